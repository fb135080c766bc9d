#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reliability and security suite against the real lab: races, faults, hostile input, secret leaks.

After every case the invariant is checked (tests/reliability/lab.py): every device of ours has a record and
every record its device (the VM's shared device of its access mode, or a device of the model's own from the
earlier layout; or it is pending on a stopped VM), no duplicate tags, the guest's mounts (binds from each
shared device's base mount) and fstab lines match the records, and the host binds exactly the recorded models
into the VM's export tree. After every fault the re-run must also give the guest the host's bytes. Prints one
line per case and a table (Markdown) at the end; exits 1 if anything did not hold.

  $LAB/venv/bin/python tests/reliability/suite.py [--trials N] [--only races,faults,hostile,secrets]
                                                   [--table docs/reliability.md]
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import Lab  # noqa: E402  pylint: disable=wrong-import-position

LOCK_TIMEOUT_WORDS = 'lock_timeout'
# A file of the lab's model that the guest reads after every fault (checksum against the host's copy).
SAMPLE_FILE = 'config.json'
FINDINGS = '''## What the suite found, and what was fixed

Each is fixed in the modules and kept as a case here (and as a unit test):

- **A dead virtiofsd hangs the guest.** After `kill -9` of a device's virtiofsd, any guest access to its mount
  (even `stat -f` under `timeout -s KILL`, even `umount -l`) blocks for good, and the stuck process keeps the
  guest from releasing the device, so it cannot be detached. The modules now check virtiofsd on the host
  (libvirt's pid file of the device), never probe such a mount (info reports `device_backend_dead`), and
  `vm_model_mount` stops before any change with a message that only a VM restart frees the device; after the
  restart one run converges.
- **libvirt forgets shared memory when libvirtd restarts.** libvirt 9.0 (before 9.2, Red Hat bug 2078693)
  refuses every virtiofs hot-plug into a running VM after a libvirtd restart with "'virtiofs' requires shared
  memory", although the live XML has it. The module now says so and that a VM restart is needed.
- **A removed fstab line came back** after the VM was destroyed right after an unmount: the guest's fstab
  change was not on disk yet. The module now syncs the guest after each fstab change, before the record.
- **A liveness probe answered from a cache.** A `stat` of a dead FUSE mount succeeds for a second after the
  last access (attribute cache), on the host and in the guest; probes now use statfs, which always reaches
  the daemon.
- **A task `environment:` leaks secrets into argv.** Ansible puts a task's environment on the command line of
  the module's wrapper shell (`/bin/sh -c 'VAR=value python'`), readable by every local user; the argv
  sampler caught a test that passed the password that way. Secrets go in module options (`no_log`) only.
- **A volume given as a string** failed with ansible-core's message that names no option; it now names
  `volume`. Mount paths with shell metacharacters, quotes, non-ASCII look-alikes or components ending in `.`
  are refused (they were accepted and would have reached the guest's fstab).
- **A mount point the guest cannot use mounted the host volume first.** A `mount_path` that is a file in the
  guest failed before any device, but after the host volume had been mounted (and kept, as a shared host
  mount). The mount point is now created before the host volume is mounted. (A `source_path` missing from the
  volume still needs the volume mounted to be found missing; that mount is kept on purpose, and the hostile
  inputs are now compared from a host that serves the volume.)
'''
ALL_MODELS = ['h-warm', 'r-same', 'r-a', 'r-b', 'r-c', 'r-flip', 'f-virtiofsd', 'f-client', 'f-libvirtd', 'f-libvirtd2', 'f-destroy',
              'f-reboot', 'f-agent', 's-redis', 's-bad', 'h-model']


class Suite:
    def __init__(self, lab, trials):
        self.lab = lab
        self.trials = trials
        self.rows = []
        self.failures = 0

    def row(self, area, case, tries, held, note):
        self.rows.append((area, case, tries, held, note))
        if held != tries:
            self.failures += 1
        print('%-8s %-58s %3d/%-3d %s' % (area, case, held, tries, note), flush=True)

    def invariant(self):
        problems, _snap = self.lab.invariant()
        return problems

    def reset(self, models):
        for model in models:
            self.lab.module('vm_model_mount', self.lab.absent_args(model))

    # --- races ------------------------------------------------------------------------------------
    def races(self):
        lab = self.lab
        held, notes = 0, []
        for trial in range(self.trials):
            runs = 2 + trial % 3
            procs = [lab.playbook([{'name': 'm', 'aimodel.kvm.vm_model_mount': lab.mount_args('r-same', mount_path='/mnt/r/same'),
                                    'ignore_errors': True}]) for _run in range(runs)]
            results = [lab.results(p)[0][0] for p in procs]
            ok = all(not r.get('failed') or LOCK_TIMEOUT_WORDS in r.get('msg', '') for r in results)
            changed = sum(1 for r in results if r.get('changed'))
            problems = self.invariant()
            if ok and changed == 1 and not problems:
                held += 1
            else:
                notes.append('trial %d: %d runs, %d changed, %s %s' % (trial, runs, changed, problems,
                                                                       [r.get('msg') for r in results if r.get('failed')]))
            self.reset(['r-same'])
        self.row('races', '2-4 concurrent runs mount the same model into one VM', self.trials, held,
                 '; '.join(notes) or 'one device, one record, exactly one run changed')

        held, notes = 0, []
        models = ['r-a', 'r-b', 'r-c']
        for trial in range(self.trials):
            procs = [lab.playbook([{'name': m, 'aimodel.kvm.vm_model_mount': lab.mount_args(m, mount_path='/mnt/r/' + m),
                                    'ignore_errors': True}]) for m in models]
            results = [lab.results(p)[0][0] for p in procs]
            ok = all(not r.get('failed') for r in results)
            problems = self.invariant()
            info = lab.module('vm_model_mount_info', {'uri': lab.uri, 'vm': lab.vm})
            statuses = sorted((m['model'], m['status']) for m in info.get('mounts', []) if m['model'] in models)
            if ok and not problems and statuses == [(m, 'mounted') for m in models]:
                held += 1
            else:
                notes.append('trial %d: %s %s %s' % (trial, problems, statuses,
                                                     [r.get('msg') for r in results if r.get('failed')]))
            self.reset(models)
        self.row('races', 'concurrent runs mount 3 different models into one VM', self.trials, held,
                 '; '.join(notes) or 'all mounted, invariant held')

        held, notes = 0, []
        for trial in range(self.trials):
            lab.module('vm_model_mount', lab.mount_args('r-flip', mount_path='/mnt/r/flip'))
            order = [lab.absent_args('r-flip'), lab.mount_args('r-flip', mount_path='/mnt/r/flip')]
            if trial % 2:
                order.reverse()
            procs = [lab.playbook([{'name': 'x', 'aimodel.kvm.vm_model_mount': args, 'ignore_errors': True}]) for args in order]
            results = [lab.results(p)[0][0] for p in procs]
            ok = all(not r.get('failed') or LOCK_TIMEOUT_WORDS in r.get('msg', '') for r in results)
            problems = self.invariant()
            if ok and not problems:
                held += 1
            else:
                notes.append('trial %d: %s %s' % (trial, problems, [r.get('msg') for r in results if r.get('failed')]))
            self.reset(['r-flip'])
        self.row('races', 'a mount racing an unmount of the same model', self.trials, held,
                 '; '.join(notes) or 'either order, the invariant held')

    # --- hostile input ----------------------------------------------------------------------------
    def hostile_cases(self):
        lab = self.lab
        base = lab.mount_args('h-model', mount_path='/mnt/h/model')
        vol = dict(base['volume'])

        def case(field, **override):
            args = dict(base)
            args.update(override)
            return field, args

        cases = [
            case('mount_path', mount_path='relative/path'),
            case('mount_path', mount_path='../escape'),
            case('mount_path', mount_path='/mnt/../etc'),
            case('mount_path', mount_path='/mnt/a/..'),
            case('mount_path', mount_path='//'),
            case('mount_path', mount_path='/'),
            case('mount_path', mount_path='/etc'),
            case('mount_path', mount_path='/usr/'),
            case('mount_path', mount_path='/var/.'),
            case('mount_path', mount_path='/lib64'),
            case('mount_path', mount_path='/proc/self'),
            case('mount_path', mount_path='/sys/kernel/x'),
            case('mount_path', mount_path='/dev/shm/x'),
            case('mount_path', mount_path='/etc/x'),
            case('mount_path', mount_path='/usr/lib/x'),
            case('mount_path', mount_path='/run/aimodel/x'),
            case('mount_path', mount_path='/var/log/x'),
            case('mount_path', mount_path='/root/.ssh'),
            case('mount_path', mount_path='/lib/x'),
            case('uri', uri='qemu+ext:///system?command=/bin/false'),
            case('uri', uri='qemu+ssh://root@127.0.0.1:1/system'),
            case('uri', uri='qemu+tcp://127.0.0.1:1/system'),
            case('uri', uri='qemu:///system?socket=/tmp/x.sock'),
            case('uri', uri='test:///default'),
            case('volume.client_path', volume=dict(vol, client_path='/tmp/juicefs')),
            case('volume.client_path', volume=dict(vol, client_path='juicefs')),
            case('volume.mount_root', volume=dict(vol, mount_root='/tmp/aimodel-h-root')),
            case('volume.mount_root', volume=dict(vol, mount_root='/var/lib/../tmp/x')),
            case('volume.cache_dir', volume=dict(vol, cache_dir='cache')),
            case('volume.cache_dir', volume=dict(vol, cache_dir='/dev/shm/cache')),
            case('mount_path', mount_path='/mnt/trailing.'),
            case('mount_path', mount_path='/mnt/...'),
            case('mount_path', mount_path='/mnt/' + 'a' * 300),
            case('mount_path', mount_path='/a' * 700),
            case('mount_path', mount_path='/mnt/a\x00b'),
            case('mount_path', mount_path='/mnt/a\nb'),
            case('mount_path', mount_path='/mnt/a\tb'),
            case('mount_path', mount_path='/mnt/a b'),
            case('mount_path', mount_path='/mnt/m\u043edels'),
            case('mount_path', mount_path='/mnt/a;reboot'),
            case('mount_path', mount_path='/mnt/a|b'),
            case('mount_path', mount_path='/mnt/a&b'),
            case('mount_path', mount_path='/mnt/$(id)'),
            case('mount_path', mount_path='/mnt/`id`'),
            case('mount_path', mount_path="/mnt/a'b"),
            case('mount_path', mount_path=''),
            case('mount_path', mount_path='/mnt/h/a-file'),
            case('model', model='a/b'),
            case('model', model='x;reboot'),
            case('model', model=''),
            case('model', model='$(id)'),
            case('model', model='`id`'),
            case('model', model='a b'),
            case('model', model='-rf'),
            case('model', model='m\u043edel'),
            case('model', model='m' * 129),
            case('model', model='x' * 100000),
            case('source_path', source_path='../outside'),
            case('source_path', source_path='models/../../etc'),
            case('source_path', source_path='/'),
            case('source_path', source_path=''),
            case('source_path', source_path='.config'),
            case('source_path', source_path='models/not-there'),
            case('volume.name', volume=dict(vol, name='bad name')),
            case('volume.name', volume=dict(vol, name='../x')),
            case('volume.name', volume=dict(vol, name='v' * 64)),
            case('volume.meta_url', volume=dict(vol, meta_url='nonsense')),
            case('volume.meta_url', volume=dict(vol, meta_url='http://evil.invalid/x')),
            case('volume.meta_url', volume=dict(vol, meta_url='redis://')),
            case('volume.meta_url', volume=dict(vol, meta_url='redis://:pw@127.0.0.1:1/1 ; id')),
            case('volume.meta_url', volume=dict(vol, meta_url='')),
            case('volume', volume='not-a-dict'),
            case('read_only', read_only='maybe'),
            case('state', state='present'),
            case('cache', cache='never'),
            case('lock_timeout', lock_timeout=-1),
            case('lock_timeout', lock_timeout=10 ** 12),
            case('device_timeout', device_timeout='soon'),
            case('cache_size', volume=dict(vol, cache_size='big')),
            case('surprise', surprise='yes'),
        ]
        return cases

    def hostile(self):
        lab = self.lab
        cases = self.hostile_cases()
        lab.guest(['mkdir', '-p', '/mnt/h'])
        lab.guest(['touch', '/mnt/h/a-file'])   # a mount_path that is a file inside the guest
        # A source_path that is not in the volume can only be found missing by looking inside the volume: its
        # host mount is made and kept on purpose (shared by all VMs of the host). Start with it mounted, as on a
        # host that serves the volume, so that the snapshots compare what a refused input must not change.
        lab.module('vm_model_mount', lab.mount_args('h-warm', mount_path='/mnt/h/warm'))
        lab.module('vm_model_mount', lab.absent_args('h-warm'))
        before_problems, before = lab.invariant()
        tasks = [{'name': 'case %d' % i, 'aimodel.kvm.vm_model_mount': args, 'ignore_errors': True}
                 for i, (_field, args) in enumerate(cases)]
        results, _out, _err = lab.results(lab.playbook(tasks))
        _after_problems, after = lab.invariant()
        held, notes = 0, []
        for (field, args), result in zip(cases, results):
            msg = result.get('msg', '')
            if result.get('failed') and field.split('.')[-1] in msg and not result.get('changed'):
                held += 1
            else:
                shown = args.get(field)
                shown = shown[:40] if isinstance(shown, str) else shown
                notes.append('%s=%r -> %s' % (field, shown, msg[:200] or result))
        same = before == after and not before_problems
        if not same:
            notes.append('the snapshots before and after differ')
            held = 0
        self.row('hostile', '%d bad inputs, each refused before any change' % len(cases), len(cases), held,
                 '; '.join(notes) or 'every error names its field; snapshots identical')

    # --- faults -----------------------------------------------------------------------------------
    def heal(self, model, path):
        """One re-run converges: changed or not, the mount ends mounted, the invariant holds and the guest reads the
        host's bytes at the mount path."""
        result = self.lab.module('vm_model_mount', self.lab.mount_args(model, mount_path=path))
        info = self.lab.module('vm_model_mount_info', {'uri': self.lab.uri, 'vm': self.lab.vm, 'model': model})
        statuses = [m['status'] for m in info.get('mounts', [])]
        problems = self.invariant()
        same_bytes = self.guest_sum(path + '/' + SAMPLE_FILE) == self.host_sum(SAMPLE_FILE)
        return (not result.get('failed') and statuses == ['mounted'] and not problems and same_bytes,
                result.get('msg') or '%s %s%s' % (statuses, problems, '' if same_bytes else ' the guest reads other bytes'))

    def guest_sum(self, path):
        code, out, _err = self.lab.guest(['sha256sum', path])
        return out.split()[0] if code == 0 and out.split() else None

    def host_sum(self, name):
        with open(os.path.join(self.lab.vars['lab_model_host_dir'], name), 'rb') as handle:
            return hashlib.sha256(handle.read()).hexdigest()

    def virtiofsd(self, key='ro'):
        """PIDs of the virtiofsd processes of the VM's shared device of this key."""
        return sorted(self.pids(['virtiofsd', 'source=' + self.lab.export_dir(key)]))

    @staticmethod
    def kept_device(first, served_by, now):
        """What is wrong with a heal that must keep the shared device: a detach or attach, no remount of the host
        volume, another virtiofsd (None: nothing)."""
        actions = first.get('actions') or []
        wrong = []
        if any('detach' in a or 'attach' in a for a in actions):
            wrong.append('it detached or attached: %s' % actions)
        if not any(a.startswith('remount the dead host volume') for a in actions):
            wrong.append('no remount of the host volume: %s' % actions)
        if not served_by or now != served_by:
            wrong.append('virtiofsd %s before, %s after' % (served_by, now))
        return '; '.join(wrong) or None

    def pids(self, needle_words):
        out = subprocess.run(['ps', '-eo', 'pid=,args='], stdout=subprocess.PIPE, check=True).stdout.decode()
        found = []
        for line in out.splitlines():
            pid, _sep, args = line.strip().partition(' ')
            if all(w in args for w in needle_words):
                found.append(int(pid))
        return found

    def restart_vm(self):
        subprocess.run(['virsh', '-c', self.lab.uri, 'destroy', self.lab.vm], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        subprocess.run(['virsh', '-c', self.lab.uri, 'start', self.lab.vm], stdout=subprocess.DEVNULL, check=True)
        self.lab.wait_agent()

    def restart_other_vms(self):
        """libvirt < 9.2 refuses virtiofs hot-plug into every VM that ran across a libvirtd restart: the lab's other
        VMs that were running then (molecule's, the q35 one) are shut down and started again, so that the suite
        leaves them able to take mounts."""
        for name in self.lab.other_running_vms():
            subprocess.run(['virsh', '-c', self.lab.uri, 'shutdown', '--mode', 'agent', name], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
            for _wait in range(120):
                if not self.lab.is_active(name):
                    break
                time.sleep(0.5)
            else:
                subprocess.run(['virsh', '-c', self.lab.uri, 'destroy', name], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, check=False)
            subprocess.run(['virsh', '-c', self.lab.uri, 'start', name], stdout=subprocess.DEVNULL, check=True)
            self.lab.wait_agent(vm=name)

    def clean_start(self, models):
        """Every fault case starts from a VM where the invariant holds."""
        if self.invariant():
            self.reset(models + ALL_MODELS)
        if self.invariant():
            self.restart_vm()
            self.reset(models + ALL_MODELS)

    def fault(self, case, inject, model, path, during=False, tries=None, restart_before_heal=False, expect=None,
              restart_after=False, keeps_device=False):
        """Inject a fault; the run ends with success or a clear error (containing ``expect`` when given); after
        it (and a VM restart where the fault leaves no other way), one re-run converges with the invariant held.
        ``restart_after``: restart the VM after each try, when the fault outlives it (so that tries are independent).
        ``keeps_device``: the first run after the fault must heal it without a detach or attach, with the same
        virtiofsd serving the shared device."""
        held, notes = 0, []
        tries = tries or max(1, self.trials // 5)
        for _try in range(tries):
            lab = self.lab
            self.clean_start([model])
            wrong = None
            if not during:
                lab.module('vm_model_mount', lab.mount_args(model, mount_path=path))
                served_by = self.virtiofsd() if keeps_device else None
                inject()
                first = lab.module('vm_model_mount', lab.mount_args(model, mount_path=path))
                if keeps_device:
                    wrong = self.kept_device(first, served_by, self.virtiofsd())
            else:
                proc = lab.playbook([{'name': 'm', 'aimodel.kvm.vm_model_mount': lab.mount_args(model, mount_path=path),
                                      'ignore_errors': True}])
                inject()
                first = lab.results(proc)[0][0]
            lab.wait_agent()
            clear = not first.get('failed') or bool(first.get('msg'))
            if expect and expect not in (first.get('msg') or ''):
                clear = False
            if restart_before_heal:
                self.restart_vm()
            ok, detail = self.heal(model, path)
            if clear and ok and not wrong:
                held += 1
            else:
                notes.append('first run: %s; re-run: %s' % (wrong or first.get('msg', 'ok'), detail))
            self.reset([model])
            if restart_after:
                self.restart_vm()
        self.row('faults', case, tries, held, '; '.join(notes) or 'clear result, one re-run converged')

    def faults(self):
        lab = self.lab

        def kill_virtiofsd():
            for pid in self.virtiofsd():
                os.kill(pid, 9)
            time.sleep(1)

        def kill_client():
            for pid in self.pids(['juicefs mount', '/var/lib/aimodel/volumes/%s/ro' % lab.vars['lab_volume_name']]):
                os.kill(pid, 9)
            time.sleep(1)

        def restart_libvirtd():
            pidfile = os.path.join(lab.vars['lab_dir'], 'run', 'libvirtd.pid')
            with open(pidfile) as handle:
                pid = int(handle.read().strip())
            os.kill(pid, 15)
            for _wait in range(100):
                if not os.path.exists('/proc/%d' % pid):
                    break
                time.sleep(0.1)
            subprocess.run(['libvirtd', '-d', '-p', pidfile], check=True, stdin=subprocess.DEVNULL, close_fds=True)
            for _wait in range(100):
                if subprocess.run(['virsh', '-c', lab.uri, 'list'], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, check=False).returncode == 0:
                    break
                time.sleep(0.1)

        def destroy_vm():
            time.sleep(2.5)
            subprocess.run(['virsh', '-c', lab.uri, 'destroy', lab.vm], stdout=subprocess.DEVNULL, check=False)
            time.sleep(1)
            subprocess.run(['virsh', '-c', lab.uri, 'start', lab.vm], stdout=subprocess.DEVNULL, check=True)

        def reboot_guest():
            time.sleep(2.5)
            subprocess.run(['virsh', '-c', lab.uri, 'reboot', '--mode', 'agent', lab.vm], stdout=subprocess.DEVNULL,
                           check=False)
            time.sleep(3)

        def stop_agent():
            try:
                lab.guest(['sh', '-c', 'echo 8 > /run/qga-pause; kill $(pidof qemu-ga)'], timeout=2)
            except Exception:  # pylint: disable=broad-except
                pass  # the agent died under its own command
            time.sleep(0.5)

        # A guest process that touches a virtiofs mount whose virtiofsd died hangs for good and pins the device:
        # the module must say that only a VM restart frees it; after the restart one run converges.
        self.fault('virtiofsd of the shared device killed while mounted (needs a VM restart)', kill_virtiofsd,
                   'f-virtiofsd', '/mnt/f/virtiofsd', restart_before_heal=True, expect='Restart the VM')
        # A dead host volume is healed on the host (remount, pin again) and in the guest (bind again): the shared
        # device and its virtiofsd stay.
        self.fault('the model repository client killed (both processes), healed without a detach', kill_client,
                   'f-client', '/mnt/f/client', keeps_device=True)
        # After a libvirtd restart, libvirt < 9.2 refuses virtiofs hot-plug into the VMs that were running (see
        # below) until they restart: the next try starts from a restarted VM.
        self.fault('libvirtd restarted between runs', restart_libvirtd, 'f-libvirtd', '/mnt/f/libvirtd',
                   restart_after=True)
        # libvirt < 9.2 forgets a running VM's shared memory when libvirtd restarts and refuses virtiofs hot-plug
        # until the VM restarts; the module says so.
        self.fault('libvirtd restarted during a run', restart_libvirtd, 'f-libvirtd2', '/mnt/f/libvirtd2', during=True,
                   restart_before_heal=True)
        self.restart_vm()
        self.restart_other_vms()
        self.fault('VM destroyed (and started) in the middle of a mount', destroy_vm, 'f-destroy', '/mnt/f/destroy',
                   during=True)
        self.fault('guest rebooted during a mount', reboot_guest, 'f-reboot', '/mnt/f/reboot', during=True)
        self.fault('guest agent stopped', stop_agent, 'f-agent', '/mnt/f/agent', expect='guest agent does not answer')

    # --- secrets ----------------------------------------------------------------------------------
    def secrets(self):
        lab = self.lab
        password = lab.vars['lab_redis_password']
        redis = {'name': lab.vars['lab_redis_volume_name'], 'meta_url': lab.vars['lab_redis_meta_url'],
                 'meta_password': password}
        seen = set()
        tasks = [
            {'name': 'mount', 'aimodel.kvm.vm_model_mount': dict(lab.mount_args('s-redis', mount_path='/mnt/s/redis'),
                                                                 volume=redis, warmup=True)},
            {'name': 'converge', 'aimodel.kvm.vm_model_mount': dict(lab.mount_args('s-redis', mount_path='/mnt/s/moved'),
                                                                    volume=redis)},
            {'name': 'unreachable metadata, password inside the URL', 'aimodel.kvm.vm_model_mount': dict(
                lab.mount_args('s-bad'), volume={'name': 'labvol-unreachable',
                                                 'meta_url': 'redis://:%s@127.0.0.1:1/1' % password}),
             'ignore_errors': True},
            {'name': 'info', 'aimodel.kvm.vm_model_mount_info': {'uri': lab.uri}},
        ]
        proc = lab.playbook(tasks, verbosity=3)
        while proc.poll() is None:
            for pid in os.listdir('/proc'):
                if pid.isdigit():
                    try:
                        with open('/proc/%s/cmdline' % pid, 'rb') as handle:
                            seen.add(handle.read().decode('utf-8', 'replace'))
                    except OSError:
                        pass
            time.sleep(0.01)
        _results, out, err = lab.results(proc)
        snap = lab.snapshot()
        logs = ''
        for name in sorted(os.listdir('/var/log/aimodel')):
            with open(os.path.join('/var/log/aimodel', name), errors='replace') as handle:
                logs += handle.read()
        places = {'-vvv output': out + err, 'argv of every process (%d distinct)' % len(seen): '\n'.join(seen),
                  'live and persistent XML, metadata, guest mounts and fstab': repr(snap), 'client logs': logs}
        leaks = [where for where, text in places.items() if password in text]
        self.reset(['s-redis', 's-bad'])
        self.row('secrets', 'Redis password searched in %s' % ', '.join(places), 1, 0 if leaks else 1,
                 ('found in: %s' % ', '.join(leaks)) if leaks else 'zero occurrences')

    def table(self):
        lines = ['| area | case | tried | held | notes |', '| --- | --- | --- | --- | --- |']
        for area, case, tries, held, note in self.rows:
            lines.append('| %s | %s | %d | %d | %s |' % (area, case, tries, held, note.replace('|', '\\|')))
        return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--trials', type=int, default=10)
    parser.add_argument('--only', default='hostile,races,faults,secrets')
    parser.add_argument('--table', help='write the result table (Markdown) into this file')
    opts = parser.parse_args()
    lab = Lab()
    suite = Suite(lab, opts.trials)
    suite.clean_start([])
    problems = suite.invariant()
    if problems:
        sys.exit('the invariant does not hold before the suite: %s' % problems)
    started = time.monotonic()
    for area in opts.only.split(','):
        getattr(suite, area)()
    elapsed = time.monotonic() - started
    print()
    print(suite.table())
    if opts.table:
        with open(opts.table, 'w') as handle:
            handle.write('# Reliability and security suite: results\n\n'
                         'Run: `bash tests/lab/lab up`, then `/var/tmp/aimodel-lab/venv/bin/python '
                         'tests/reliability/suite.py --trials 10 --table docs/reliability.md`; `bash tests/run` '
                         'runs it with 3 trials per race. '
                         'Produced by `tests/reliability/suite.py --trials %d` against the lab (%s, %d s). The '
                         'invariant checked after every case: every device of ours has a record and every record '
                         'its device (the VM\'s shared device of its access mode, or a device of the model\'s own '
                         'from the earlier layout; or it is pending on a stopped VM); no duplicate tags; the '
                         'guest\'s mounts (binds from each shared device\'s base mount) and fstab lines match the '
                         'records; the host binds exactly the recorded models into the VM\'s export tree. After '
                         'every fault the re-run also gives the guest the host\'s bytes.\n\n%s\n\n%s'
                         % (opts.trials, time.strftime('%Y-%m-%d'), elapsed, suite.table(), FINDINGS))
    shutil.rmtree(lab.work, ignore_errors=True)
    passed = len(suite.rows) - suite.failures
    print('%d passed, %d failed' % (passed, suite.failures))
    return 1 if suite.failures else 0


if __name__ == '__main__':
    sys.exit(main())
