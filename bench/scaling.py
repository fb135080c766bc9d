# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bench section "scale": 1, 2, 4, 8 models into one VM (8 also with the old layout's modules, alternating) and
one model into 2 and 3 VMs, the memory of the JuiceFS clients and virtiofsd, and where the time of one mount
goes."""

import os
import statistics

from common import BENCH_VMS, MODELS, PLAY_MOUNT, fmt, say, summary


def mount_n(b, vms, models, layout='new'):
    w, t, changed = b.playbook(PLAY_MOUNT, vms, models, layout=layout)
    assert changed
    return w, t


def proc_status(pid):
    out = {}
    try:
        with open('/proc/%d/status' % pid) as handle:
            for line in handle:
                key, _sep, value = line.partition(':')
                if key in ('RssAnon', 'RssFile', 'RssShmem', 'VmRSS', 'PPid'):
                    out[key] = int(value.split()[0])
    except OSError:
        return None
    return out


def processes():
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % entry, 'rb') as handle:
                argv = handle.read().split(b'\0')
        except OSError:
            continue
        args = [a.decode('utf-8', 'replace') for a in argv if a]
        if len(args) == 1 and ' ' in args[0]:
            args = args[0].split()      # juicefs rewrites its argv into one string (to mask passwords)
        found.append((int(entry), args))
    return found


def virtiofsd_pairs(b, names):
    """{vm: [[status of each process of one device's virtiofsd]]}: libvirt writes the pid of each device's
    virtiofsd to /run/libvirt/qemu/<domain id>-<name>-<alias>-fs.pid; the worker it forks is its child."""
    table = dict((pid, proc_status(pid)) for pid, _argv in processes())
    found = {}
    for name in names:
        domain = b.dom(name)
        found[name] = []
        if not domain.isActive():
            continue
        for entry in sorted(os.listdir('/run/libvirt/qemu')):
            if not (entry.startswith('%d-' % domain.ID()) and entry.endswith('-fs.pid')):
                continue
            try:
                with open(os.path.join('/run/libvirt/qemu', entry)) as handle:
                    parent = int(handle.read().strip())
            except (OSError, ValueError):
                continue
            if not table.get(parent):
                continue
            found[name].append([table[parent]] + [st for st in table.values() if st and st.get('PPid') == parent])
    return found


def memory_snapshot(b, vms=None):
    """The JuiceFS clients of the bench volume's mount and the virtiofsd of the VMs (default: the bench's VM and
    its copies), per device (one device = one virtiofsd with its worker) and per VM."""
    root = b.volume['mount_root']
    vms = vms or [b.vm] + BENCH_VMS
    jfs = []
    for pid, argv in processes():
        if argv and os.path.basename(argv[0]) == 'juicefs' and 'mount' in argv and any(a.startswith(root) for a in argv):
            jfs.append(pid)
    jst = [s for s in (proc_status(p) for p in jfs) if s]
    keys = ('RssAnon', 'RssFile', 'RssShmem', 'VmRSS')
    pairs = virtiofsd_pairs(b, vms)
    per_device = [dict((k, sum(m.get(k, 0) for m in members)) for k in keys) for name in vms for members in pairs[name]]
    per_vm = dict((name, {'devices': len(pairs[name]), 'processes': sum(len(m) for m in pairs[name]),
                          'kib': dict((k, sum(p.get(k, 0) for m in pairs[name] for p in m)) for k in keys)})
                  for name in vms if pairs[name])
    with open('/proc/self/mountinfo') as handle:
        mounts = sum(1 for line in handle if root in line.split()[4])
    return {
        'juicefs_processes': len(jst),
        'juicefs_host_mounts': mounts,
        'juicefs_kib': dict((k, sum(s[k] for s in jst)) for k in keys),
        'virtiofsd_devices': len(per_device),
        'virtiofsd_processes': sum(v['processes'] for v in per_vm.values()),
        'virtiofsd_kib_per_device_median': dict((k, statistics.median([d[k] for d in per_device]) if per_device else 0)
                                                for k in keys),
        'virtiofsd_kib_total': dict((k, sum(d[k] for d in per_device)) for k in keys),
        'virtiofsd_per_vm': per_vm,
    }


def run(b):
    say('== 4+5. Scaling and memory (%d runs each) ==' % b.scale_runs)
    memory = {}
    curve = {}
    old_eight = []
    for n in (1, 2, 4, 8):
        times, walls = [], []
        for rep in range(b.scale_runs):
            both = ['new', 'old'] if rep % 2 == 0 else ['old', 'new']
            for layout in both if n == 8 and 'old' in b.layouts else ['new']:
                w, t = mount_n(b, [b.vm], MODELS[:n], layout)
                if layout == 'old':
                    old_eight.append(t)
                else:
                    times.append(t)
                    walls.append(w)
                if rep == 0 and n in (1, 4, 8):
                    memory['%d model(s), 1 VM%s' % (n, ', old' if layout == 'old' else '')] = memory_snapshot(b)
                b.unmount_all([(b.vm, m) for m in MODELS[:n]], layout)
        curve['%d models into 1 VM' % n] = {'task': summary(times), 'per_mount': summary([x / n for x in times]),
                                            'playbook_wall': summary(walls)}
    if old_eight:
        curve['8 models into 1 VM, old'] = {'task': summary(old_eight), 'per_mount': summary([x / 8 for x in old_eight])}
    for k in (2, 3):
        vms = [b.vm] + BENCH_VMS[:k - 1]
        times, walls = [], []
        for rep in range(b.scale_runs):
            w, t = mount_n(b, vms, ['bench-m1'])
            times.append(t)
            walls.append(w)
            if rep == 0 and k == 2:
                memory['2 models, 2 VMs (1+1)'] = memory_snapshot(b)
            b.unmount_all([(vm, 'bench-m1') for vm in vms])
        curve['1 model into %d VMs' % k] = {'task': summary(times), 'per_mount': summary([x / k for x in times]),
                                            'playbook_wall': summary(walls)}
    curve['1 model into 1 VMs'] = curve['1 models into 1 VM']
    # 8 models across 2 VMs (4 + 4) for the memory table; then one more model from a second volume
    # (the lab's Redis volume): one more JuiceFS client, whatever the number of model mounts.
    mount_n(b, [b.vm, BENCH_VMS[0]], MODELS[:4])
    memory['8 models, 2 VMs (4+4)'] = memory_snapshot(b)
    redis = {'name': b.vars['lab_redis_volume_name'], 'meta_url': b.vars['lab_redis_meta_url'],
             'meta_password': b.vars['lab_redis_password'], 'mount_root': b.volume['mount_root'],
             'cache_dir': b.volume['cache_dir']}
    b.modrun(dict(b.module_args(BENCH_VMS[0], 'bench-redis'), volume=redis))
    memory['9 models, 2 VMs, 2 volumes'] = memory_snapshot(b)
    b.unmount_all([(vm, m) for vm in (b.vm, BENCH_VMS[0]) for m in MODELS[:4]] + [(BENCH_VMS[0], 'bench-redis')])
    # Where the time of one mount goes (direct module run, profiled), against the same mount as a task.
    prof = b.modrun(b.module_args(b.vm, 'bench-m1'))
    b.unmount_all([(b.vm, 'bench-m1')])
    b.results['scaling'] = curve
    b.results['memory'] = memory
    b.results['breakdown_mount'] = {'process': prof['outer'], 'in_module': prof['wall'], 'main': prof['main'],
                                    'layers': prof['layers'],
                                    'guest_round_trips': prof['guest_round_trips'], 'libvirt_c_calls': prof['libvirt_c_calls']}
    say('%-22s %-34s %-28s' % ('case', 'task wall (median, min–max)', 'per mount'))
    for key in ('1 models into 1 VM', '2 models into 1 VM', '4 models into 1 VM', '8 models into 1 VM',
                '8 models into 1 VM, old', '1 model into 2 VMs', '1 model into 3 VMs'):
        if key not in curve:
            continue
        c = curve[key]
        say('%-22s %-34s %-28s' % (key.replace('1 models', '1 model'), fmt(c['task']), fmt(c['per_mount'])))
    b = b.results['breakdown_mount']
    single = curve['1 models into 1 VM']['task']['median']
    layers = b['layers']
    other = b['main'] - sum(layers.values())
    say('one mount, where the time goes (profiled run): task %.3f s = Ansible (task minus module process) %.3f s + '
        'python start %.3f s + imports %.3f s + main() %.3f s [libvirt %.3f s, guest agent %.3f s in %d round trips, '
        'JuiceFS %.3f s, lock %.3f s, other %.3f s]; %d libvirt C calls'
        % (single, single - b['process'], b['process'] - b['in_module'], b['in_module'] - b['main'], b['main'],
           layers['libvirt'], layers['guest'], b['guest_round_trips'], layers['juicefs'], layers['lock'], other,
           b['libvirt_c_calls']))
    say()
    say('== 4. Memory (KiB; JuiceFS clients of the bench volume mount; virtiofsd per device = its process pair) ==')
    columns = '%-26s %-5s %-7s %-24s %-7s %-7s %-24s %-18s'
    say(columns % ('case', 'jfs', 'jfs', 'juicefs RSS anon/file/shm', 'devices', 'vfsd', 'virtiofsd/device', 'virtiofsd, all'))
    say(columns % ('', 'mnts', 'procs', '(all clients)', '', 'procs', 'anon/file/shm (median)', 'RSS/RssAnon'))
    for key, m in memory.items():
        j, v, t = m['juicefs_kib'], m['virtiofsd_kib_per_device_median'], m['virtiofsd_kib_total']
        row = (key, m['juicefs_host_mounts'], m['juicefs_processes'], '%d/%d/%d' % (j['RssAnon'], j['RssFile'], j['RssShmem']),
               m['virtiofsd_devices'], m['virtiofsd_processes'], '%d/%d/%d' % (v['RssAnon'], v['RssFile'], v['RssShmem']),
               '%d/%d' % (t['VmRSS'], t['RssAnon']))
        say('%-26s %-5d %-7d %-24s %-7d %-7d %-24s %-18s' % row)
    say()
