# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bench sections "layout" and "q35": the modules of an earlier release (layout ``old``: one virtiofs device per
model, extracted by bench/run) against the working tree's (``new``: one shared device per VM and access mode,
each model a bind), in the same run, alternating.

layout: on the bench's VM (machine pc): the mount of a first and of a later model (a second one, the first
        still mounted) as tasks and as the module's main(), against the floor in one process (attach, mkdir,
        mount); BENCH_SCALE_RUNS runs. 8 models into that VM, old and new, with the memory of their virtiofsd, are in scaling.py.
q35:    on the lab's q35 VM (few PCIe root ports): 8 and 20 models as one looping task each; the old layout fails
        when the VM has no free port left (which model, and the error), the new one takes every model.
"""

import xml.etree.ElementTree as ET

from common import FIRST, LATER, PLAY_MOUNT, Q35_MODELS, fmt, ratio, say, summary
from scaling import memory_snapshot

PLAY_FIRST_LATER = '''
- hosts: localhost
  gather_facts: false
  connection: local
  tasks:
    - name: first model
      aimodel.kvm.vm_model_mount:
        uri: "{{ bench_uri }}"
        vm: "{{ bench_vms[0] }}"
        model: "{{ bench_models[0] }}"
        source_path: "{{ bench_source }}"
        volume: "{{ bench_volume }}"
    - name: later model
      aimodel.kvm.vm_model_mount:
        uri: "{{ bench_uri }}"
        vm: "{{ bench_vms[0] }}"
        model: "{{ bench_models[1] }}"
        source_path: "{{ bench_source }}"
        volume: "{{ bench_volume }}"
'''


def orders(b, runs):
    """The layouts to compare, alternating which goes first from run to run."""
    names = [n for n in ('old', 'new') if n in b.layouts]
    return [names if i % 2 == 0 else list(reversed(names)) for i in range(runs)]


def loop_items(task):
    """Per item of a looping task: (seconds, changed, failed, message, item); an item's time runs from the end
    of the one before (the first: from the task's start)."""
    out, last = [], task['start']
    for item in task['items']:
        out.append((item['end'] - last, item['changed'], item['failed'], item['msg'], item['item']))
        last = item['end']
    return out


def mount_loop(b, name, models, layout):
    """One task mounting the models in a loop; (task seconds, per item, ansible-playbook's return code)."""
    _wall, tasks, proc = b.playbook_tasks(PLAY_MOUNT, [name], models, layout=layout)
    task = tasks[-1]
    return task['end'] - task['start'], loop_items(task), proc.returncode


def mounted_items(items, models):
    return [m for m, it in zip(models, items) if not it[2]]


def vm_memory(b, name):
    """virtiofsd of one VM: devices, processes, RSS and RssAnon (KiB, all its virtiofsd together)."""
    snap = memory_snapshot(b, [name])
    vm = snap['virtiofsd_per_vm'].get(name, {'devices': 0, 'processes': 0, 'kib': {'VmRSS': 0, 'RssAnon': 0}})
    return {'devices': vm['devices'], 'processes': vm['processes'], 'rss_kib': vm['kib']['VmRSS'],
            'rss_anon_kib': vm['kib']['RssAnon'], 'juicefs_processes': snap['juicefs_processes']}


def first_later(b):
    say('== 8. Layouts: %s (old: one device per model) against the working tree (new: one shared device) ==' % (b.old_ref or 'old'))
    if 'old' not in b.layouts:
        say('(no old layout: bench/run extracts it from git; skipped)')
        say()
        return
    res = dict((layout, {'first_task': [], 'later_task': [], 'first_main': [], 'later_main': []}) for layout in b.layouts)
    raw = []
    profiled = {}
    runs = b.scale_runs
    for run, order in enumerate(orders(b, runs)):
        for layout in order:
            _wall, tasks, proc = b.playbook_tasks(PLAY_FIRST_LATER, [b.vm], [FIRST, LATER], layout=layout)
            if proc.returncode != 0:
                raise RuntimeError('%s layout: mounting %s and %s failed:\n%s' % (layout, FIRST, LATER, proc.stdout[-2000:]))
            assert tasks[-2]['changed'] and tasks[-1]['changed']
            res[layout]['first_task'].append(tasks[-2]['end'] - tasks[-2]['start'])
            res[layout]['later_task'].append(tasks[-1]['end'] - tasks[-1]['start'])
            b.unmount_all([(b.vm, LATER), (b.vm, FIRST)], layout)
            # The module's main() alone (a direct run); the last run is profiled (guest round trips, libvirt calls).
            prof = run == runs - 1
            first = b.modrun(b.module_args(b.vm, FIRST), profile=prof, layout=layout)
            later = b.modrun(b.module_args(b.vm, LATER), profile=prof, layout=layout)
            res[layout]['first_main'].append(first['main'])
            res[layout]['later_main'].append(later['main'])
            if prof:
                profiled[layout] = {'first': first, 'later': later}
            b.unmount_all([(b.vm, LATER), (b.vm, FIRST)], layout)
        raw.append(b.raw_mount('bench-raw', '/mnt/models/bench-raw'))
        b.raw_unmount('bench-raw', '/mnt/models/bench-raw')
    out = {'old_ref': b.old_ref, 'raw': summary(raw)}
    for layout, figures in res.items():
        out[layout] = dict((k, summary(v)) for k, v in figures.items())
        for which in ('first', 'later'):
            p = profiled[layout][which]
            out[layout]['%s_profiled' % which] = {'main': p['main'], 'layers': p['layers'],
                                                  'guest_round_trips': p['guest_round_trips'],
                                                  'libvirt_c_calls': p['libvirt_c_calls']}
    b.results['layouts'] = out
    say('floor in one process: attachDeviceFlags(LIVE|CONFIG) + guest-exec mkdir, mount   %s' % fmt(raw))
    say('%-34s %-32s %-32s %s' % ('', 'old', 'new', 'new/old'))
    for key, label in (('first_task', 'first model, task'), ('later_task', 'later model, task'),
                       ('first_main', "first model, module's main()"), ('later_main', "later model, module's main()")):
        say('%-34s %-32s %-32s %.2f' % (label, fmt(res['old'][key]), fmt(res['new'][key]), ratio(res['new'][key], res['old'][key])))
    for key, label in (('first_task', 'first model, task'), ('later_task', 'later model, task')):
        say('%-34s old %.2f, new %.2f' % (label + ' / floor', ratio(res['old'][key], raw), ratio(res['new'][key], raw)))
    for layout in ('old', 'new'):
        for which in ('first', 'later'):
            p = out[layout]['%s_profiled' % which]
            say('%s, %s model, profiled: main() %.3f s; guest agent %.3f s in %d round trips, libvirt %.3f s, JuiceFS %.3f s; '
                '%d libvirt C calls' % (layout, which, p['main'], p['layers']['guest'], p['guest_round_trips'],
                                        p['layers']['libvirt'], p['layers']['juicefs'], p['libvirt_c_calls']))
    say()


def free_ports(b, name):
    """pcie-root-ports of the live XML that no device or controller sits on."""
    root = ET.fromstring(b.dom(name).XMLDesc(0))
    ports = [int(c.get('index')) for c in root.findall('./devices/controller')
             if c.get('type') == 'pci' and c.get('model') == 'pcie-root-port']
    used = set(int(a.get('bus'), 16) for a in root.iter('address') if a.get('type') == 'pci' and a.get('bus'))
    return [p for p in ports if p not in used]


def old_runs(b, name, old, memory):
    """8 and then 20 models into the q35 VM with the old layout: which model fails first, and why; the mounts that
    succeeded are taken away again."""
    for n in (8, 20):
        _took, items, _rc = mount_loop(b, name, Q35_MODELS[:n], 'old')
        done = mounted_items(items, Q35_MODELS[:n])
        failed = [(i, it) for i, it in enumerate(items) if it[2]]
        old['per_mount_ok'].extend(it[0] for it in items if not it[2])
        old['failures'][n] = {'mounted': len(done), 'failed': len(failed),
                              'first_failed': failed[0][0] + 1 if failed else None,
                              'error': failed[0][1][3] if failed else None}
        if n == 8:
            memory['old, 8 asked'] = vm_memory(b, name)
        b.unmount_all([(name, m) for m in reversed(done)], 'old')


def q35(b):
    name = b.vm_q35
    say('== 9. Many models into one q35 VM (%s; PCIe root ports) ==' % name)
    if not name:
        say('(the lab has no q35 VM: tests/lab/lab up defines it; skipped)')
        say()
        return
    ports = len(free_ports(b, name))
    new = {8: {'task': [], 'per_mount': []}, 20: {'task': [], 'per_mount': []}}
    old = {'per_mount_ok': [], 'failures': {}}
    memory = {}
    for rep, order in enumerate(orders(b, b.scale_runs)):
        for layout in order:
            if layout == 'old':
                if rep == 0:   # once: every model past the slot limit fails alike, in every run
                    old_runs(b, name, old, memory)
                continue
            for n in (8, 20):
                took, items, rc = mount_loop(b, name, Q35_MODELS[:n], 'new')
                if rc != 0:
                    raise RuntimeError('new layout: %d models into %s failed: %s' % (n, name, [i[3] for i in items if i[2]][:1]))
                new[n]['task'].append(took)
                new[n]['per_mount'].append(took / n)
                if rep == 0:
                    memory['new %d' % n] = dict(vm_memory(b, name), free_ports=len(free_ports(b, name)))
                b.unmount_all([(name, m) for m in reversed(Q35_MODELS[:n])], 'new')
    b.results['q35'] = {'vm': name, 'free_ports': ports, 'memory': memory,
                        'old': {'per_mount_ok': summary(old['per_mount_ok']) if old['per_mount_ok'] else None,
                                'failures': old['failures']},
                        'new': dict((n, dict((k, summary(v)) for k, v in f.items())) for n, f in new.items())}
    say('%d free PCIe root ports before the first model' % ports)
    if 'old' in b.layouts:
        for n, f in sorted(old['failures'].items()):
            say('old, %2d models: %d mounted, %d failed, the first failure at model %s; error: %s'
                % (n, f['mounted'], f['failed'], f['first_failed'], (f['error'] or '').split('. Done before')[0].strip()))
        if old['per_mount_ok']:
            say('old, each mount that succeeded   %s' % fmt(old['per_mount_ok']))
    for n in (8, 20):
        say('new, %2d models: task %s, per mount %s' % (n, fmt(new[n]['task']), fmt(new[n]['per_mount'])))
    for key in ('old, 8 asked', 'new 8', 'new 20'):
        if key not in memory:
            continue
        m = memory[key]
        say('virtiofsd, %-13s %d device(s), %d processes, RSS %d KiB, RssAnon %d KiB%s'
            % (key + ':', m['devices'], m['processes'], m['rss_kib'], m['rss_anon_kib'],
               ', free root ports %d' % m['free_ports'] if 'free_ports' in m else ''))
    say()
