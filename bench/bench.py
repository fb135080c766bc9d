#!/usr/bin/env python
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The aimodel.kvm bench (issue 7): mount cost, no-op cost, data path, memory and scaling on the lab's
second VM. Run it through bench/run, which sets up the collection path. Prints every figure and writes
them as JSON to $BENCH_DIR/results.json. Every comparison is measured in the same run, alternating.

Only the lab's second VM (LAB_VM2) and bench-only VMs it defines itself (copies of LAB_VM2's XML with
their own persistent disk, undefined and deleted at the end) are touched; the module runs use their own
JuiceFS mount of the lab volume under $BENCH_DIR/volumes.
"""

import base64
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET

import libvirt
import libvirt_qemu

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB = os.environ.get('AIMODEL_LAB', '/var/tmp/aimodel-lab')
BENCH = os.environ.get('BENCH_DIR', os.path.join(LAB, 'bench'))
COLL = os.environ['BENCH_COLLECTIONS']          # a directory holding ansible_collections/aimodel/kvm
RUNS = int(os.environ.get('BENCH_RUNS', '5'))
SCALE_RUNS = int(os.environ.get('BENCH_SCALE_RUNS', '3'))
PY = sys.executable
MODULE = os.path.join(ROOT, 'plugins', 'modules', 'vm_model_mount.py')
BENCH_VMS = ['aimodel-bench3', 'aimodel-bench4']
MODELS = ['bench-m%d' % i for i in range(1, 9)]
RESULTS = {}


def lab_vars():
    out = subprocess.run([PY, os.path.join(ROOT, 'tests', 'lab', 'lab_vars.py')], check=True,
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    return json.loads(out)


V = lab_vars()
URI = V['lab_uri']
VM = V['lab_vm2']
SOURCE = V['lab_model_source']
VOLUME = {'name': V['lab_volume_name'], 'meta_url': V['lab_meta_url'],
          'mount_root': os.path.join(BENCH, 'volumes'), 'cache_dir': os.path.join(BENCH, 'jfscache')}
JUICEFS = '/usr/local/bin/juicefs' if os.path.exists('/usr/local/bin/juicefs') else shutil.which('juicefs')
HOST_POINT = os.path.join(VOLUME['mount_root'], VOLUME['name'], 'ro')


# --- figures -------------------------------------------------------------------------------------------

def summary(values):
    values = [v for v in values if v is not None]
    return {'median': statistics.median(values), 'min': min(values), 'max': max(values), 'n': len(values),
            'values': values}


def fmt(s, unit='s', digits=3):
    if isinstance(s, list):
        s = summary(s)
    return '%.*f %s (%.*f–%.*f, n=%d)' % (digits, s['median'], unit, digits, s['min'], digits, s['max'], s['n'])


def ratio(a, b):
    return summary(a)['median'] / summary(b)['median']


def say(text=''):
    print(text, flush=True)


# --- libvirt and the guest agent, by hand (the raw floor and the measurements) -----------------------------

CONN = libvirt.open(URI)


def conn():
    """The libvirt connection, opened again when libvirtd was restarted under it (the lead's tests do that)."""
    global CONN  # pylint: disable=global-statement
    for _try in range(60):
        try:
            if CONN.isAlive():
                CONN.getLibVersion()
                return CONN
        except libvirt.libvirtError:
            pass
        try:
            CONN = libvirt.open(URI)
            return CONN
        except libvirt.libvirtError:
            time.sleep(1)
    raise RuntimeError('libvirtd does not answer at %s' % URI)


def dom(name=VM):
    return conn().lookupByName(name)


def agent(name, execute, arguments=None, timeout=60):
    request = {'execute': execute}
    if arguments is not None:
        request['arguments'] = arguments
    return json.loads(libvirt_qemu.qemuAgentCommand(dom(name), json.dumps(request), timeout, 0)).get('return')


def exec_with(send, argv, timeout=120):
    """guest-exec of argv through send(execute, arguments) -> the agent's return value, then guest-exec-status
    every 4 ms for the first 2 s (a doubling interval would round a timed command up to its next poll), then
    every 0.1 s. Returns (exit code, stdout, stderr)."""
    pid = send('guest-exec', {'path': argv[0], 'arg': argv[1:], 'capture-output': True})['pid']
    start = time.monotonic()
    while True:
        time.sleep(0.004 if time.monotonic() - start < 2 else 0.1)
        status = send('guest-exec-status', {'pid': pid})
        if status.get('exited'):
            return (status.get('exitcode'), base64.b64decode(status.get('out-data', '')).decode(),
                    base64.b64decode(status.get('err-data', '')).decode())
        if time.monotonic() > start + timeout:
            raise RuntimeError('guest command %s timed out' % argv)


def gexec(name, argv, timeout=120):
    return exec_with(lambda execute, arguments: agent(name, execute, arguments), argv, timeout)


def gwrite(name, path, text):
    handle = agent(name, 'guest-file-open', {'path': path, 'mode': 'w'})
    try:
        agent(name, 'guest-file-write', {'handle': handle, 'buf-b64': base64.b64encode(text.encode()).decode()})
    finally:
        agent(name, 'guest-file-close', {'handle': handle})


def wait_agent(name, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            agent(name, 'guest-ping', timeout=5)
            return True
        except libvirt.libvirtError:
            time.sleep(0.5)
    raise RuntimeError('guest agent of %s did not answer within %ss' % (name, timeout))


def _started(pid):
    with open('/proc/%d/stat' % pid) as handle:
        return int(handle.read().rsplit(')', 1)[1].split()[19])


def dead_backends(name):
    """Aliases of live virtiofs devices whose virtiofsd is gone (the lead's reliability tests kill them)."""
    domain = dom(name)
    dead = []
    for alias in re.findall(r"<filesystem[^>]*>.*?<alias name='([^']+)'", domain.XMLDesc(0), re.S):
        pidfiles = [f for f in os.listdir('/run/libvirt/qemu') if f.startswith('%d-' % domain.ID()) and
                    f.endswith('-%s-fs.pid' % alias)]
        alive = False
        for pidfile in pidfiles:
            try:
                with open(os.path.join('/run/libvirt/qemu', pidfile)) as handle:
                    alive = os.path.exists('/proc/%d' % int(handle.read().strip()))
            except (OSError, ValueError):
                pass
        if not alive:
            dead.append(alias)
    return dead


def cleanup_raw():
    """Remove what the hand-made (raw) parts of a failed section left on the VM."""
    paths = {'bench-raw': '/mnt/models/bench-raw', 'bench-plain': '/mnt/bench-plain'}
    for flag, xml in ((libvirt.VIR_DOMAIN_AFFECT_LIVE, dom().XMLDesc(0)),
                      (libvirt.VIR_DOMAIN_AFFECT_CONFIG, dom().XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))):
        for source, tag in re.findall(r"<filesystem.*?<source dir='([^']+)'/>.*?<target dir='([^']+)'/>", xml, re.S):
            if tag in paths:
                if flag == libvirt.VIR_DOMAIN_AFFECT_LIVE:
                    gexec(VM, ['umount', paths[tag]])
                dom().detachDeviceFlags(fs_xml(source, tag), flag)
        if flag == libvirt.VIR_DOMAIN_AFFECT_LIVE and 'blk.img' in xml:
            gexec(VM, ['umount', '/mnt/bench-blk'])
            img = os.path.join(BENCH, 'blk.img')
            dom().detachDeviceFlags("<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='%s'/>"
                                    "<target dev='vdb' bus='virtio'/><readonly/></disk>" % img, flag)


def ensure_host_volume():
    """A VM whose persistent config holds devices on the bench volume starts only when that volume is mounted."""
    if not any(HOST_POINT in line.split()[4] for line in open('/proc/self/mountinfo')):
        os.makedirs(HOST_POINT, exist_ok=True)
        subprocess.run([JUICEFS, 'mount', '-d', '--read-only', '--no-usage-report', '--cache-dir', VOLUME['cache_dir'],
                        '--log', os.path.join(BENCH, 'juicefs.log'), VOLUME['meta_url'], HOST_POINT],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def heal_after_libvirtd_restart(names):
    """libvirt < 9.2 forgets the shared memory backing of running VMs when libvirtd restarts (the lead's
    reliability tests restart it), and then refuses virtiofs hot-plug: restart such VMs (ours only)."""
    with open('/run/libvirt/qemu/driver.pid') as handle:
        daemon = _started(int(handle.read().split()[0]))
    ensure_host_volume()
    for name in names:
        if not dom(name).isActive():
            dom(name).create()
            continue
        try:
            with open('/run/libvirt/qemu/%s.pid' % name) as handle:
                qemu = _started(int(handle.read().split()[0]))
        except OSError:
            continue
        dead = dead_backends(name)
        if qemu < daemon or dead:
            why = ('the virtiofsd of %s is gone' % ', '.join(dead)) if dead else 'it runs since before the last libvirtd restart'
            say('(restarting %s: %s)' % (name, why))
            dom(name).destroy()
            dom(name).create()
    for name in names:
        wait_agent(name)


def drop_caches(vms=(VM,)):
    subprocess.run(['sync'], check=True)
    with open('/proc/sys/vm/drop_caches', 'w') as handle:
        handle.write('3\n')
    for name in vms:
        gwrite(name, '/proc/sys/vm/drop_caches', '3\n')


def fs_xml(source, tag):
    return ("<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/>"
            "<source dir='%s'/><target dir='%s'/></filesystem>" % (source, tag))


def live_has(name, tag):
    return ("dir='%s'" % tag) in dom(name).XMLDesc(0)


def floor(attach, run, tag, path):
    """The floor's steps, timed: attach, mkdir -p, then the mount, retried every 0.02 s while the guest discovers
    the device (as the module does). No checks, no fstab, no record."""
    start = time.monotonic()
    attach()
    rc, _out, err = run(['mkdir', '-p', path])
    assert rc == 0, err
    for _try in range(500):
        rc, _out, err = run(['mount', '-t', 'virtiofs', '-o', 'ro', tag, path])
        if rc == 0:
            return time.monotonic() - start
        time.sleep(0.02)
    raise RuntimeError('floor mount of %s failed: %s' % (tag, err))


def raw_mount(tag, path, source=None):
    """The floor in one process: attachDeviceFlags(LIVE|CONFIG) and the guest commands on one open domain handle."""
    domain = dom()
    device = fs_xml(source or os.path.join(HOST_POINT, SOURCE), tag)

    def send(execute, arguments):
        request = json.dumps({'execute': execute, 'arguments': arguments})
        return json.loads(libvirt_qemu.qemuAgentCommand(domain, request, 60, 0))['return']
    return floor(lambda: domain.attachDeviceFlags(device, libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG),
                 lambda argv: exec_with(send, argv), tag, path)


def virsh(*args):
    return subprocess.run(['virsh', '-q', '-c', URI] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=True).stdout


def raw_mount_virsh(tag, path, source=None):
    """The floor as a user scripts it today: virsh attach-device --live --config with an XML file, and the guest
    commands through virsh qemu-agent-command (guest-exec, guest-exec-status); one virsh process per step."""
    xml_file = os.path.join(BENCH, 'virsh-%s.xml' % tag)
    with open(xml_file, 'w') as handle:
        handle.write(fs_xml(source or os.path.join(HOST_POINT, SOURCE), tag))

    def send(execute, arguments):
        return json.loads(virsh('qemu-agent-command', VM, json.dumps({'execute': execute, 'arguments': arguments})))['return']
    try:
        return floor(lambda: virsh('attach-device', VM, xml_file, '--live', '--config'),
                     lambda argv: exec_with(send, argv), tag, path)
    finally:
        os.unlink(xml_file)


def raw_unmount(tag, path, source=None):
    gexec(VM, ['umount', path])
    dom().detachDeviceFlags(fs_xml(source or os.path.join(HOST_POINT, SOURCE), tag),
                            libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    while live_has(VM, tag):
        time.sleep(0.05)


# --- the module: through ansible-playbook, and directly ----------------------------------------------------

def module_args(vm, model, state='mounted', **extra):
    args = {'uri': URI, 'vm': vm, 'model': model, 'state': state}
    if state == 'mounted':
        args.update(source_path=SOURCE, volume=VOLUME)
    args.update(extra)
    return args


def modrun(args, profile=True):
    """One direct run of the module (python, no ansible-playbook), profiled by bench/modrun.py (or only
    timed: profile=False)."""
    work = tempfile.mkdtemp(dir=BENCH)
    try:
        with open(os.path.join(work, 'args.json'), 'w') as handle:
            json.dump({'ANSIBLE_MODULE_ARGS': args}, handle)
        env = dict(os.environ, PYTHONPATH=COLL)
        if not profile:
            env['BENCH_NOPROFILE'] = '1'
        start = time.monotonic()
        subprocess.run([PY, os.path.join(ROOT, 'bench', 'modrun.py'), MODULE, os.path.join(work, 'args.json'),
                        os.path.join(work, 'out.json')], env=env, check=True)
        outer = time.monotonic() - start
        with open(os.path.join(work, 'out.json')) as handle:
            data = json.load(handle)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if data['result'].get('failed'):
        raise RuntimeError('module failed: %s' % data['result'].get('msg'))
    data['outer'] = outer
    return data


def unmount_all(pairs):
    """state=absent directly through the module, one thread per VM (the module locks per VM anyway)."""
    by_vm = {}
    for vm, model in pairs:
        by_vm.setdefault(vm, []).append(model)

    errors = []

    def work(vm, models):
        try:
            for model in models:
                modrun(module_args(vm, model, 'absent'))
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(exc)
    threads = [threading.Thread(target=work, args=item) for item in by_vm.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


PLAY_MOUNT = '''
- hosts: localhost
  gather_facts: false
  connection: local
  tasks:
    - name: bench mounts
      aimodel.kvm.vm_model_mount:
        uri: "{{ bench_uri }}"
        vm: "{{ item.0 }}"
        model: "{{ item.1 }}"
        source_path: "{{ bench_source }}"
        volume: "{{ bench_volume }}"
        state: "{{ bench_state }}"
      loop: "{{ bench_vms | product(bench_models) | list }}"
'''

PLAY_STAT = '''
- hosts: localhost
  gather_facts: false
  connection: local
  tasks:
    - name: bench stats
      ansible.builtin.stat:
        path: "{{ bench_source_dir }}"
      loop: "{{ bench_vms | product(bench_models) | list }}"
'''


def playbook(text, vms, models, state='mounted'):
    """Run a playbook; returns (wall of ansible-playbook, seconds of its one task from the callback)."""
    work = tempfile.mkdtemp(dir=BENCH)
    try:
        with open(os.path.join(work, 'play.yml'), 'w') as handle:
            handle.write(text)
        with open(os.path.join(work, 'vars.json'), 'w') as handle:
            json.dump({'bench_uri': URI, 'bench_vms': list(vms), 'bench_models': list(models), 'bench_state': state,
                       'bench_source': SOURCE, 'bench_volume': VOLUME, 'ansible_python_interpreter': PY,
                       'bench_source_dir': os.path.join(HOST_POINT, SOURCE)}, handle)
        timing = os.path.join(work, 'timing.jsonl')
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLL, ANSIBLE_CALLBACK_PLUGINS=os.path.join(ROOT, 'bench', 'callback_plugins'),
                   ANSIBLE_CALLBACKS_ENABLED='bench_timing', BENCH_TIMING_FILE=timing, ANSIBLE_LOCALHOST_WARNING='false',
                   ANSIBLE_INVENTORY_UNPARSED_WARNING='false', ANSIBLE_NOCOLOR='1', ANSIBLE_RETRY_FILES_ENABLED='false')
        start = time.monotonic()
        proc = subprocess.run([os.path.join(os.path.dirname(PY), 'ansible-playbook'), '-i', 'localhost,',
                               os.path.join(work, 'play.yml'), '-e', '@' + os.path.join(work, 'vars.json')],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                              check=False)
        wall = time.monotonic() - start
        if proc.returncode != 0:
            raise RuntimeError('ansible-playbook failed:\n%s' % proc.stdout[-3000:])
        with open(timing) as handle:
            tasks = [json.loads(line) for line in handle]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    task = tasks[-1]
    return wall, task['end'] - task['start'], task['changed']


def stat_process(path):
    """ansible.builtin.stat run directly (python process, no ansible-playbook) on a path: its wall time."""
    work = tempfile.mkdtemp(dir=BENCH)
    try:
        with open(os.path.join(work, 'args.json'), 'w') as handle:
            json.dump({'ANSIBLE_MODULE_ARGS': {'path': path}}, handle)
        start = time.monotonic()
        subprocess.run([PY, '-m', 'ansible.modules.stat', os.path.join(work, 'args.json')], check=True,
                       stdout=subprocess.DEVNULL)
        return time.monotonic() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- memory ---------------------------------------------------------------------------------------------

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


def memory_snapshot():
    root = VOLUME['mount_root']
    jfs, vfs = [], []
    for pid, argv in processes():
        if not argv:
            continue
        exe = os.path.basename(argv[0])
        if exe == 'juicefs' and 'mount' in argv and any(a.startswith(root) for a in argv):
            jfs.append(pid)
        elif 'virtiofsd' in exe and any(root in a for a in argv):
            vfs.append(pid)
    jst = [s for s in (proc_status(p) for p in jfs) if s]
    vst = dict((p, proc_status(p)) for p in vfs)
    vst = dict((p, s) for p, s in vst.items() if s)
    # virtiofsd runs as a pair (parent + its worker child): one pair per device.
    pairs = [p for p, s in vst.items() if s['PPid'] not in vst]
    per_device = []
    for parent in pairs:
        members = [vst[parent]] + [s for p, s in vst.items() if s['PPid'] == parent]
        per_device.append(dict((k, sum(m[k] for m in members)) for k in ('RssAnon', 'RssFile', 'RssShmem', 'VmRSS')))
    mounts = sum(1 for line in open('/proc/self/mountinfo') if root in line.split()[4])
    return {
        'juicefs_processes': len(jst),
        'juicefs_host_mounts': mounts,
        'juicefs_kib': dict((k, sum(s[k] for s in jst)) for k in ('RssAnon', 'RssFile', 'RssShmem', 'VmRSS')),
        'virtiofsd_devices': len(per_device),
        'virtiofsd_processes': len(vst),
        'virtiofsd_kib_per_device_median': dict((k, statistics.median([d[k] for d in per_device]) if per_device else 0)
                                                for k in ('RssAnon', 'RssFile', 'RssShmem', 'VmRSS')),
        'virtiofsd_kib_total': dict((k, sum(d[k] for d in per_device)) for k in ('RssAnon', 'RssFile', 'RssShmem', 'VmRSS')),
    }


# --- bench VMs (for 2 and 3 VMs) -------------------------------------------------------------------------

def define_bench_vm(name):
    xml = dom(VM).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    root = ET.fromstring(xml)
    root.find('name').text = name
    root.find('uuid').text = str(uuid.uuid4())
    metadata = root.find('metadata')
    if metadata is not None:
        root.remove(metadata)
    devices = root.find('devices')
    for fs in devices.findall('filesystem'):
        devices.remove(fs)
    for disk in devices.findall('disk'):
        src = disk.find('source')
        if src is not None and src.get('file'):
            copy = os.path.join(BENCH, 'persist-%s.img' % name)
            shutil.copyfile(src.get('file'), copy)
            src.set('file', copy)
    for tag in ('serial', 'console'):
        for elem in devices.findall(tag):
            src = elem.find('source')
            if src is not None and src.get('path'):
                src.set('path', os.path.join(BENCH, '%s-console.log' % name))
    for elem in devices.findall('channel'):
        src = elem.find('source')
        if src is not None and src.get('path'):
            elem.remove(src)
    for elem in devices.iter('mac'):
        elem.set('address', '52:54:00:%02x:%02x:%02x' % tuple(os.urandom(3)))
    new = conn().defineXML(ET.tostring(root).decode())
    new.create()


def remove_bench_vm(name):
    try:
        domain = conn().lookupByName(name)
    except libvirt.libvirtError:
        return
    if domain.isActive():
        domain.destroy()
    domain.undefineFlags(getattr(libvirt, 'VIR_DOMAIN_UNDEFINE_NVRAM', 0))
    for path in (os.path.join(BENCH, 'persist-%s.img' % name), os.path.join(BENCH, '%s-console.log' % name)):
        if os.path.exists(path):
            os.unlink(path)


def our_models(name):
    """bench-* records on a VM (from the module's metadata)."""
    xml = dom(name).XMLDesc(0) + dom(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    return [m for m in MODELS + ['bench-one', 'bench-data', 'bench-redis'] if re.search(r"model=['\"]%s['\"]" % m, xml)]


# --- the figures -------------------------------------------------------------------------------------------

def bench_mount_cost():
    say('== 1. Mount cost: one model into the running VM %s (%d runs, alternating) ==' % (VM, RUNS))
    task, wall, direct, direct_in, direct_main, raw, raw_virsh = [], [], [], [], [], [], []
    for _try in range(RUNS):
        w, t, changed = playbook(PLAY_MOUNT, [VM], ['bench-one'])
        assert changed
        task.append(t)
        wall.append(w)
        unmount_all([(VM, 'bench-one')])
        raw_virsh.append(raw_mount_virsh('bench-raw', '/mnt/models/bench-raw'))
        raw_unmount('bench-raw', '/mnt/models/bench-raw')
        raw.append(raw_mount('bench-raw', '/mnt/models/bench-raw'))
        raw_unmount('bench-raw', '/mnt/models/bench-raw')
        data = modrun(module_args(VM, 'bench-one'), profile=False)
        direct.append(data['outer'])
        direct_in.append(data['wall'])
        direct_main.append(data['main'])
        unmount_all([(VM, 'bench-one')])
    RESULTS['mount_cost'] = {'task': summary(task), 'playbook_wall': summary(wall), 'direct_process': summary(direct),
                             'direct_in_module': summary(direct_in), 'direct_main': summary(direct_main),
                             'raw': summary(raw), 'raw_virsh': summary(raw_virsh),
                             'ratio_task_raw_virsh': ratio(task, raw_virsh),
                             'ratio_task_raw': ratio(task, raw), 'ratio_direct_raw': ratio(direct, raw),
                             'ratio_in_module_raw': ratio(direct_in, raw), 'ratio_main_raw': ratio(direct_main, raw)}
    r = RESULTS['mount_cost']
    say('floor by hand: virsh attach-device --live --config + virsh qemu-agent-command mkdir, mount   %s' % fmt(raw_virsh))
    say('floor in one process: attachDeviceFlags(LIVE|CONFIG) + guest-exec mkdir, mount             %s' % fmt(raw))
    say('module task (callback: task start to end)       %s   ratio %.2f to the virsh floor, %.2f to the API floor'
        % (fmt(task), r['ratio_task_raw_virsh'], r['ratio_task_raw']))
    say('module run directly (python process)            %s   ratio %.2f to the API floor' % (fmt(direct), r['ratio_direct_raw']))
    say('module run directly (imports + main())          %s   ratio %.2f to the API floor' % (fmt(direct_in), r['ratio_in_module_raw']))
    say('module run directly (main() alone)              %s   ratio %.2f to the API floor' % (fmt(direct_main), r['ratio_main_raw']))
    say('ansible-playbook wall (whole command)           %s' % fmt(wall))
    say()


def bench_noop():
    say('== 2. No-op cost: 8 mounts already in place vs 8 ansible.builtin.stat (%d runs, alternating) ==' % RUNS)
    playbook(PLAY_MOUNT, [VM], MODELS)
    mod_t, mod_w, stat_t, stat_w = [], [], [], []
    for _try in range(RUNS):
        w, t, changed = playbook(PLAY_MOUNT, [VM], MODELS)
        assert not changed, 'the no-op run changed something'
        mod_t.append(t)
        mod_w.append(w)
        w, t, _changed = playbook(PLAY_STAT, [VM], MODELS)
        stat_t.append(t)
        stat_w.append(w)
    # Per item: the module's process (no profiler) and the stat module's process, run directly, alternating.
    mod_p, mod_main, stat_p = [], [], []
    for _try in range(3 * RUNS):
        data = modrun(module_args(VM, MODELS[0]), profile=False)
        mod_p.append(data['outer'])
        mod_main.append(data['main'])
        stat_p.append(stat_process(os.path.join(HOST_POINT, SOURCE)))
    prof = modrun(module_args(VM, MODELS[0]))
    RESULTS['noop_item'] = {'module_process': summary(mod_p), 'module_main': summary(mod_main),
                            'stat_process': summary(stat_p),
                            'module_ansible': summary(mod_t)['median'] / len(MODELS) - summary(mod_p)['median'],
                            'stat_ansible': summary(stat_t)['median'] / len(MODELS) - summary(stat_p)['median']}
    RESULTS['noop'] = {'module_task': summary(mod_t), 'stat_task': summary(stat_t), 'module_wall': summary(mod_w),
                       'stat_wall': summary(stat_w), 'ratio_task': ratio(mod_t, stat_t), 'ratio_wall': ratio(mod_w, stat_w),
                       'direct_noop': {'in_module': prof['wall'], 'main': prof['main'], 'layers': prof['layers'],
                                       'guest_round_trips': prof['guest_round_trips'],
                                       'libvirt_c_calls': prof['libvirt_c_calls']}}
    r = RESULTS['noop']
    say('8 x vm_model_mount (no-op), task   %s' % fmt(mod_t))
    say('8 x stat,                   task   %s   ratio %.2f' % (fmt(stat_t), r['ratio_task']))
    say('whole ansible-playbook: mounts %s, stats %s, ratio %.2f' % (fmt(mod_w), fmt(stat_w), r['ratio_wall']))
    n = RESULTS['noop_item']
    say('per item: vm_model_mount %.3f s = Ansible %.3f s + its process %s (main() %.3f s); stat %.3f s = Ansible '
        '%.3f s + its process %s' % (summary(mod_t)['median'] / len(MODELS), n['module_ansible'], fmt(mod_p),
                                     n['module_main']['median'], summary(stat_t)['median'] / len(MODELS),
                                     n['stat_ansible'], fmt(stat_p)))
    d = r['direct_noop']
    say('one no-op, profiled: imports + main() %.3f s, main() %.3f s; libvirt %.3f s, guest %.3f s (%d agent round '
        'trips), juicefs %.3f s, lock %.3f s; %d libvirt C calls'
        % (d['in_module'], d['main'], d['layers']['libvirt'], d['layers']['guest'], d['guest_round_trips'],
           d['layers']['juicefs'], d['layers']['lock'], d['libvirt_c_calls']))
    say()


def bench_guest_reads():
    """Item 7's before/after in one run: the guest read of a run (mount table + fstab) with cat through
    guest-exec (before) against the agent's file commands (after), alternating, 20 times each."""
    sys.path.insert(0, COLL)
    from ansible_collections.aimodel.kvm.plugins.module_utils import _guest, _libvirt  # pylint: disable=import-outside-toplevel
    connection = _libvirt.connect(URI)
    try:
        domain = connection.lookup(VM)
        before, after, trips = [], [], {}
        for _try in range(20):
            agent_ = _guest.Agent(domain)
            start = time.monotonic()
            _guest.parse_mountinfo(agent_._read_file_with_cat(_guest.MOUNTINFO))  # pylint: disable=protected-access
            agent_._read_file_with_cat(_guest.FSTAB)  # pylint: disable=protected-access
            before.append(time.monotonic() - start)
            trips['before'] = agent_.round_trips
            agent_ = _guest.Agent(domain)
            start = time.monotonic()
            agent_.mounts()
            agent_.read_file(_guest.FSTAB)
            after.append(time.monotonic() - start)
            trips['after'] = agent_.round_trips
    finally:
        connection.close()
    RESULTS['guest_reads'] = {'cat_via_guest_exec': summary(before), 'agent_file_commands': summary(after),
                              'ratio_after_before': ratio(after, before), 'round_trips': trips}
    say('== 7. Guest read of one run (mount table + fstab), 20 alternating runs ==')
    say('before: cat through guest-exec (2 guest processes)   %s, %d round trips' % (fmt(before), trips['before']))
    say('after:  guest-file-open/read/close (no process)      %s, %d round trips, ratio %.2f'
        % (fmt(after), trips['after'], RESULTS['guest_reads']['ratio_after_before']))
    say()


def dd(name, path):
    """Seconds of a sequential read in the guest, as dd itself reports them when it does (GNU dd, busybox
    built with its status line: "... copied, 0.352 s"), else the wall time around the command, polled every
    4 ms (the lab's busybox dd prints no time)."""
    start = time.monotonic()
    rc, out, err = gexec(name, ['dd', 'if=' + path, 'of=/dev/null', 'bs=1M'])
    wall = time.monotonic() - start
    assert rc == 0, err
    found = re.search(r'copied, ([0-9.]+) s', err + out)
    if found and float(found.group(1)) > 0:
        DD_TIMING.add('by dd itself')
        return float(found.group(1))
    DD_TIMING.add('around the guest command (polled every 4 ms; ~10 ms of agent round trips included)')
    return wall


DD_TIMING = set()


def host_dd(path):
    start = time.monotonic()
    subprocess.run(['dd', 'if=' + path, 'of=/dev/null', 'bs=1M'], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.monotonic() - start


KERNEL_READ_AHEAD_KB = 128


def guest_mount_dev(name, path):
    """major:minor of the (last) mount at path in the guest, from its mountinfo."""
    _rc, out, _err = gexec(name, ['cat', '/proc/self/mountinfo'])
    found = None
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == path:
            found = fields[2]
    if found is None:
        raise RuntimeError('%s is not mounted in %s' % (path, name))
    return found


def bench_data_path():
    say('== 3. Data path: sequential read of model.safetensors in the guest (%d runs, alternating) ==' % RUNS)
    size = os.path.getsize(os.path.join(V['lab_model_host_dir'], 'model.safetensors'))
    img = os.path.join(BENCH, 'blk.img')
    src = os.path.join(BENCH, 'blk-src')
    os.makedirs(src, exist_ok=True)
    shutil.copyfile(os.path.join(V['lab_model_host_dir'], 'model.safetensors'), os.path.join(src, 'model.safetensors'))
    if os.path.exists(img):
        os.unlink(img)
    subprocess.run(['mkfs.ext4', '-q', '-F', '-d', src, img, '%dM' % (size // 2**20 + 40)], check=True)
    shutil.rmtree(src)
    disk = ("<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='%s'/>"
            "<target dev='vdb' bus='virtio'/><readonly/></disk>" % img)
    dom().attachDeviceFlags(disk, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    gexec(VM, ['mkdir', '-p', '/mnt/bench-blk'])
    for _try in range(100):
        rc, _out, err = gexec(VM, ['mount', '-t', 'ext4', '-o', 'ro,noload', '/dev/vdb', '/mnt/bench-blk'])
        if rc == 0:
            break
        time.sleep(0.1)
    else:
        raise RuntimeError('cannot mount the virtio-blk disk in the guest: %s' % err)
    modrun(module_args(VM, 'bench-data'))
    plain_dir = V['lab_model_host_dir']
    raw_mount('bench-plain', '/mnt/bench-plain', plain_dir)
    vfile = '/mnt/models/bench-data/model.safetensors'
    bfile = '/mnt/bench-blk/model.safetensors'
    pfile = '/mnt/bench-plain/model.safetensors'
    hfile = os.path.join(HOST_POINT, SOURCE, 'model.safetensors')
    cold, warm, hot, blk, warmup_s, plain, host_cold, host_warm, warm_ra = [], [], [], [], [], [], [], [], []
    # The guest's readahead of the virtiofs mount: the module sets it (read_ahead_kb, 1024 KiB by default);
    # one measurement puts back the guest kernel's default (128 KiB), as read_ahead_kb: 0 would leave it.
    ra_file = '/sys/class/bdi/%s/read_ahead_kb' % guest_mount_dev(VM, '/mnt/models/bench-data')
    _rc, ra_module, _err = gexec(VM, ['cat', ra_file])
    evict = [JUICEFS, 'warmup', '--evict', os.path.join(HOST_POINT, SOURCE)]
    try:
        for _try in range(RUNS):
            subprocess.run(evict, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            drop_caches()
            cold.append(dd(VM, vfile))
            hot.append(dd(VM, vfile))
            subprocess.run(evict, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            drop_caches()
            warmup_s.append(modrun(module_args(VM, 'bench-data', warmup=True))['wall'])
            drop_caches()   # page caches only: the JuiceFS disk cache the warmup filled stays
            warm.append(dd(VM, vfile))
            gwrite(VM, ra_file, '%d\n' % KERNEL_READ_AHEAD_KB)
            drop_caches()
            warm_ra.append(dd(VM, vfile))
            gwrite(VM, ra_file, ra_module)
            drop_caches()
            blk.append(dd(VM, bfile))
            drop_caches()
            plain.append(dd(VM, pfile))
            subprocess.run(evict, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            drop_caches()
            host_cold.append(host_dd(hfile))
            drop_caches()
            host_warm.append(host_dd(hfile))
    finally:
        raw_unmount('bench-plain', '/mnt/bench-plain', plain_dir)
        gexec(VM, ['umount', '/mnt/bench-blk'])
        dom().detachDeviceFlags(disk, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        for _try in range(100):
            if img not in dom().XMLDesc(0):
                break
            time.sleep(0.1)
        os.unlink(img)
        unmount_all([(VM, 'bench-data')])
    mb = size / 1e6

    def speed(values):
        return summary([mb / v for v in values])
    RESULTS['data_path'] = {'bytes': size, 'virtiofs_cold_MBps': speed(cold), 'virtiofs_warmup_MBps': speed(warm),
                            'virtiofs_hot_MBps': speed(hot), 'virtio_blk_cold_MBps': speed(blk),
                            'read_ahead_kb_module': int(ra_module), 'read_ahead_kb_kernel': KERNEL_READ_AHEAD_KB,
                            'virtiofs_warmup_kernel_readahead_MBps': speed(warm_ra),
                            'ratio_warm_kernel_ra_blk': ratio([mb / v for v in warm_ra], [mb / v for v in blk]),
                            'warmup_module_run_s': summary(warmup_s), 'virtiofs_plain_dir_MBps': speed(plain),
                            'host_juicefs_cold_MBps': speed(host_cold), 'host_juicefs_cached_MBps': speed(host_warm),
                            'ratio_plain_blk': ratio([mb / v for v in plain], [mb / v for v in blk]),
                            'ratio_warm_blk': ratio([mb / v for v in warm], [mb / v for v in blk]),
                            'ratio_cold_blk': ratio([mb / v for v in cold], [mb / v for v in blk]),
                            'ratio_warm_cold': ratio([mb / v for v in warm], [mb / v for v in cold])}
    r = RESULTS['data_path']
    say('%d bytes; guest dd bs=1M to /dev/null, timed %s' % (size, ' and '.join(sorted(DD_TIMING))))
    say('virtio-blk (ext4 image, host+guest caches dropped)     %s' % fmt(r['virtio_blk_cold_MBps'], 'MB/s', 0))
    say('virtiofs cold (JuiceFS cache evicted, caches dropped)  %s   ratio to blk %.2f'
        % (fmt(r['virtiofs_cold_MBps'], 'MB/s', 0), r['ratio_cold_blk']))
    say('virtiofs after warmup: true (page caches dropped)      %s   ratio to blk %.2f, to cold %.2f'
        % (fmt(r['virtiofs_warmup_MBps'], 'MB/s', 0), r['ratio_warm_blk'], r['ratio_warm_cold']))
    say('the same with the guest kernel readahead %d KiB (module: %s)  %s   ratio to blk %.2f'
        % (KERNEL_READ_AHEAD_KB, ra_module.strip(), fmt(r['virtiofs_warmup_kernel_readahead_MBps'], 'MB/s', 0),
           r['ratio_warm_kernel_ra_blk']))
    say('virtiofs second read (caches warm)                     %s' % fmt(r['virtiofs_hot_MBps'], 'MB/s', 0))
    say('virtiofs over a plain host directory (no JuiceFS)      %s   ratio to blk %.2f'
        % (fmt(r['virtiofs_plain_dir_MBps'], 'MB/s', 0), r['ratio_plain_blk']))
    say('on the host, JuiceFS mount: cold %s; from its disk cache %s'
        % (fmt(r['host_juicefs_cold_MBps'], 'MB/s', 0), fmt(r['host_juicefs_cached_MBps'], 'MB/s', 0)))
    say('module run with warmup: true (the warmup itself)        %s' % fmt(warmup_s))
    say()


def mount_n(vms, models):
    w, t, changed = playbook(PLAY_MOUNT, vms, models)
    assert changed
    return w, t


def bench_scaling_and_memory():
    say('== 4+5. Scaling and memory (%d runs each) ==' % SCALE_RUNS)
    memory = {}
    curve = {}
    for n in (1, 2, 4, 8):
        times, walls, direct = [], [], []
        for run in range(SCALE_RUNS):
            w, t = mount_n([VM], MODELS[:n])
            times.append(t)
            walls.append(w)
            if run == 0 and n in (1, 4, 8):
                memory['%d model(s), 1 VM' % n] = memory_snapshot()
            unmount_all([(VM, m) for m in MODELS[:n]])
        curve['%d models into 1 VM' % n] = {'task': summary(times), 'per_mount': summary([x / n for x in times]),
                                            'playbook_wall': summary(walls)}
    for k in (2, 3):
        vms = [VM] + BENCH_VMS[:k - 1]
        times, walls = [], []
        for run in range(SCALE_RUNS):
            w, t = mount_n(vms, ['bench-m1'])
            times.append(t)
            walls.append(w)
            if run == 0 and k == 2:
                memory['2 models, 2 VMs (1+1)'] = memory_snapshot()
            unmount_all([(vm, 'bench-m1') for vm in vms])
        curve['1 model into %d VMs' % k] = {'task': summary(times), 'per_mount': summary([x / k for x in times]),
                                            'playbook_wall': summary(walls)}
    curve['1 model into 1 VMs'] = curve['1 models into 1 VM']
    # 8 models across 2 VMs (4 + 4) for the memory table; then one more model from a second volume
    # (the lab's Redis volume): one more JuiceFS client, whatever the number of model mounts.
    mount_n([VM, BENCH_VMS[0]], MODELS[:4])
    memory['8 models, 2 VMs (4+4)'] = memory_snapshot()
    redis = {'name': V['lab_redis_volume_name'], 'meta_url': V['lab_redis_meta_url'],
             'meta_password': V['lab_redis_password'], 'mount_root': VOLUME['mount_root'],
             'cache_dir': VOLUME['cache_dir']}
    modrun(dict(module_args(BENCH_VMS[0], 'bench-redis'), volume=redis))
    memory['9 models, 2 VMs, 2 volumes'] = memory_snapshot()
    unmount_all([(vm, m) for vm in (VM, BENCH_VMS[0]) for m in MODELS[:4]] + [(BENCH_VMS[0], 'bench-redis')])
    # Where the time of one mount goes (direct module run, profiled), against the same mount as a task.
    prof = modrun(module_args(VM, 'bench-m1'))
    unmount_all([(VM, 'bench-m1')])
    RESULTS['scaling'] = curve
    RESULTS['memory'] = memory
    RESULTS['breakdown_mount'] = {'process': prof['outer'], 'in_module': prof['wall'], 'main': prof['main'],
                                  'layers': prof['layers'],
                                  'guest_round_trips': prof['guest_round_trips'], 'libvirt_c_calls': prof['libvirt_c_calls']}
    say('%-22s %-34s %-28s' % ('case', 'task wall (median, min–max)', 'per mount'))
    for key in ('1 models into 1 VM', '2 models into 1 VM', '4 models into 1 VM', '8 models into 1 VM',
                '1 model into 2 VMs', '1 model into 3 VMs'):
        c = curve[key]
        say('%-22s %-34s %-28s' % (key.replace('1 models', '1 model'), fmt(c['task']), fmt(c['per_mount'])))
    b = RESULTS['breakdown_mount']
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
    say('%-24s %-5s %-7s %-24s %-7s %-30s' % ('case', 'jfs', 'jfs', 'juicefs RSS anon/file/shm', 'devices',
                                              'virtiofsd/device anon/file/shm'))
    say('%-24s %-5s %-7s %-24s %-7s %-30s' % ('', 'mnts', 'procs', '(all clients)', '', '(median)'))
    for key, m in memory.items():
        j, v = m['juicefs_kib'], m['virtiofsd_kib_per_device_median']
        row = (key, m['juicefs_host_mounts'], m['juicefs_processes'], '%d/%d/%d' % (j['RssAnon'], j['RssFile'], j['RssShmem']),
               m['virtiofsd_devices'], '%d/%d/%d' % (v['RssAnon'], v['RssFile'], v['RssShmem']))
        say('%-24s %-5d %-7d %-24s %-7d %-30s' % row)
    say()


def machine():
    def cmd(argv):
        try:
            return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                                  check=False).stdout.strip()
        except OSError:
            return 'n/a'
    cpu = ''
    with open('/proc/cpuinfo') as handle:
        for line in handle:
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    with open('/proc/meminfo') as handle:
        mem = handle.readline().split()[1]
    info = {'date': time.strftime('%Y-%m-%d %H:%M:%S %Z'), 'nproc': os.cpu_count(), 'mem_kib': int(mem), 'cpu': cpu,
            'kernel': platform.release(), 'libvirt': cmd(['libvirtd', '--version']),
            'qemu': cmd(['qemu-system-x86_64', '--version']).splitlines()[0], 'juicefs': cmd([JUICEFS, '--version']),
            'ansible': cmd([os.path.join(os.path.dirname(PY), 'ansible'), '--version']).splitlines()[0],
            'python': platform.python_version(), 'vm': VM, 'domain_type': dom().XMLDesc(0).split("type='")[1].split("'")[0],
            'runs': RUNS, 'scale_runs': SCALE_RUNS}
    RESULTS['machine'] = info
    say('== machine ==')
    for key, value in info.items():
        say('%-12s %s' % (key, value))
    say()


def main():
    os.makedirs(BENCH, exist_ok=True)
    started = time.monotonic()
    machine()
    for name in BENCH_VMS:
        remove_bench_vm(name)
        define_bench_vm(name)
    try:
        heal_after_libvirtd_restart([VM])
        leftovers = [(VM, m) for m in our_models(VM)]
        for name in BENCH_VMS:
            wait_agent(name)
        if leftovers:
            unmount_all(leftovers)
        # One mount first, not timed: it mounts the bench's host volume (JuiceFS) once.
        first = modrun(module_args(VM, 'bench-one'))
        unmount_all([(VM, 'bench-one')])
        RESULTS['first_mount_with_host_volume_s'] = first['wall']
        say('first mount (also mounts the host volume with JuiceFS, not counted below): %.3f s in the module, '
            'JuiceFS %.3f s' % (first['wall'], first['layers']['juicefs']))
        say()
        only = os.environ.get('BENCH_ONLY', 'reads,mount,noop,data,scale').split(',')
        sections = [('reads', [VM], bench_guest_reads), ('mount', [VM], bench_mount_cost), ('noop', [VM], bench_noop), ('data', [VM], bench_data_path),
                    ('scale', [VM] + BENCH_VMS, bench_scaling_and_memory)]
        for key, vms, section in sections:
            if key not in only:
                continue
            for attempt in (1, 2):
                heal_after_libvirtd_restart(vms)
                try:
                    section()
                    break
                except Exception as exc:  # pylint: disable=broad-except
                    # The lead's tests restart libvirtd and kill virtiofsd at times: heal, clean up, retry once.
                    say('(section %s failed: %s)' % (key, str(exc)[:300]))
                    heal_after_libvirtd_restart(vms)
                    cleanup_raw()
                    time.sleep(3)
                    for name in vms:
                        leftovers = [(name, m) for m in our_models(name)]
                        if leftovers:
                            unmount_all(leftovers)
                    if attempt == 2:
                        raise
            if key == 'noop':
                unmount_all([(VM, m) for m in MODELS])
    finally:
        for name in BENCH_VMS:
            remove_bench_vm(name)
        with open('/proc/self/mountinfo') as handle:
            lines = handle.readlines()
        for line in lines:
            point = line.split()[4]
            if point.startswith(VOLUME['mount_root'] + '/'):
                subprocess.run([JUICEFS, 'umount', point], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               check=False)
        RESULTS['total_s'] = time.monotonic() - started
        with open(os.path.join(BENCH, 'results.json'), 'w') as handle:
            json.dump(RESULTS, handle, indent=1, sort_keys=True)
    say('bench done in %.0f s; figures in %s' % (RESULTS['total_s'], os.path.join(BENCH, 'results.json')))


if __name__ == '__main__':
    main()
