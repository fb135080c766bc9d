#!/usr/bin/env python
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The aimodel.kvm bench: mount cost, no-op cost, data path, memory and scaling on the lab's second VM, and the
earlier release's layout (one device per model) against the working tree's (one shared device) there and on the
lab's q35 VM. Run it through bench/run, which sets up the collection paths. Prints every figure and writes them
as JSON to $BENCH_DIR/results.json. Every comparison is measured in the same run, alternating.

The sections (BENCH_ONLY picks them, in this order): reads (guest_reads.py), mount (mount_cost.py),
layout (layouts.py), noop (noop.py), data (data_path.py), scale (scaling.py), q35 (layouts.py), reboot (reboot.py,
on the lab's Debian guest LAB_VM_DEB); what they share
is in common.py.

Only the lab's second VM (LAB_VM2), its q35 VM (LAB_VM_Q35), its Debian VM (LAB_VM_DEB) and bench-only VMs it defines itself (copies of
LAB_VM2's XML with their own persistent disk, undefined and deleted at the end) are touched; the module runs use
their own JuiceFS mount of the lab volume under $BENCH_DIR/volumes.
"""

import json
import os
import platform
import subprocess
import time

import common
import data_path
import guest_reads
import layouts
import mount_cost
import noop
import reboot
import scaling
from common import BENCH_VMS, MODELS, say

SECTIONS = ['reads', 'mount', 'layout', 'noop', 'data', 'scale', 'q35', 'reboot']


def machine(b):
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
            'qemu': cmd(['qemu-system-x86_64', '--version']).splitlines()[0], 'juicefs': cmd([b.juicefs, '--version']),
            'ansible': cmd([os.path.join(os.path.dirname(b.py), 'ansible'), '--version']).splitlines()[0],
            'python': platform.python_version(), 'vm': b.vm, 'domain_type': b.dom().XMLDesc(0).split("type='")[1].split("'")[0],
            'vm_q35': b.vm_q35, 'old_layout': b.old_ref if 'old' in b.layouts else 'n/a',
            'loadavg': ' '.join('%.2f' % x for x in os.getloadavg()),
            'runs': b.runs, 'scale_runs': b.scale_runs}
    b.results['machine'] = info
    say('== machine ==')
    for key, value in info.items():
        say('%-12s %s' % (key, value))
    say()


def run_sections(b, only):
    """The selected sections in their order; a section that fails is healed, cleaned up and run once more."""
    sections = [('reads', [b.vm], guest_reads.run), ('mount', [b.vm], mount_cost.run),
                ('layout', [b.vm], layouts.first_later), ('noop', [b.vm], noop.run),
                ('data', [b.vm], data_path.run), ('scale', [b.vm] + BENCH_VMS, scaling.run),
                ('q35', [b.vm_q35], layouts.q35), ('reboot', [b.vm_deb], reboot.run)]
    took = b.results.setdefault('section_s', {})
    for key, vms, section in sections:
        if key not in only or not all(vms):
            continue
        started = time.monotonic()
        for attempt in (1, 2):
            b.heal_after_libvirtd_restart(vms)
            try:
                section(b)
                break
            except Exception as exc:  # pylint: disable=broad-except
                # The reliability suite restarts libvirtd and kills virtiofsd at times: heal, clean up, retry once.
                say('(section %s failed: %s)' % (key, str(exc)[:300]))
                b.heal_after_libvirtd_restart(vms)
                b.cleanup_raw()
                time.sleep(3)
                for name in vms:
                    leftovers = [(name, m) for m in b.our_models(name)]
                    if leftovers:
                        b.unmount_all(leftovers)
                if attempt == 2:
                    raise
        if key == 'noop':
            b.unmount_all([(b.vm, m) for m in MODELS])
        took[key] = time.monotonic() - started


def main():
    b = common.Bench()
    os.makedirs(b.dir, exist_ok=True)
    started = time.monotonic()
    machine(b)
    for name in BENCH_VMS:
        b.remove_bench_vm(name)
        b.define_bench_vm(name)
    try:
        ours = [b.vm] + [name for name in (b.vm_q35, b.vm_deb) if name]
        b.heal_after_libvirtd_restart(ours)
        leftovers = [(name, m) for name in ours for m in b.our_models(name)]
        for name in BENCH_VMS:
            b.wait_agent(name)
        if leftovers:
            b.unmount_all(leftovers)
        # One mount first, not timed: it mounts the bench's host volume (JuiceFS) once.
        first = b.modrun(b.module_args(b.vm, 'bench-one'))
        b.unmount_all([(b.vm, 'bench-one')])
        b.results['first_mount_with_host_volume_s'] = first['wall']
        say('first mount (also mounts the host volume with JuiceFS, not counted below): %.3f s in the module, '
            'JuiceFS %.3f s' % (first['wall'], first['layers']['juicefs']))
        say()
        run_sections(b, os.environ.get('BENCH_ONLY', ','.join(SECTIONS)).split(','))
    finally:
        for name in BENCH_VMS:
            b.remove_bench_vm(name)
        b.umount_volumes()
        b.results['total_s'] = time.monotonic() - started
        with open(os.path.join(b.dir, 'results.json'), 'w') as handle:
            json.dump(b.results, handle, indent=1, sort_keys=True)
    say('bench done in %.0f s (%s; load average now %s); figures in %s'
        % (b.results['total_s'], ', '.join('%s %.0f s' % kv for kv in b.results.get('section_s', {}).items()),
           ' '.join('%.2f' % x for x in os.getloadavg()), os.path.join(b.dir, 'results.json')))


if __name__ == '__main__':
    main()
