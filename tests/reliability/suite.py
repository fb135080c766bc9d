#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reliability and security suite against the real lab: races, faults, hostile input, secret leaks, attacks.

After every case the invariant is checked (tests/reliability/lab.py): every device of ours has a record and
every record its device (the VM's shared device of its access mode, or a device of the model's own from the
earlier layout; or it is pending on a stopped VM), no duplicate tags, the guest's mounts (binds from each
shared device's base mount) and fstab lines match the records, and the host binds exactly the recorded models
into the VM's export tree. After every fault the re-run must also give the guest the host's bytes. The attacks
(an untrusted guest root, a volume writer, a volume that only shares the name, a volume that stops answering)
are each tried once, as an attacker would: each is deterministic. Prints one line per case and a table
(Markdown) at the end; exits 1 if anything did not hold. --only takes areas or single attack cases
(attack_fstab, attack_swap, attack_same_name, attack_slow).

  $LAB/venv/bin/python tests/reliability/suite.py [--trials N] [--only hostile,races,faults,secrets,attacks]
                                                   [--table docs/reliability.md]
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import argparse
import hashlib
import json
import os
import shlex
import shutil
import signal
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

The attacks (area `attacks`) are tried as an attacker would, each once (they are deterministic); each case checks
its defense, then the invariant, and leaves the lab as it found it:

- **A guest's root points `/etc/fstab` at `/dev/zero`.** A run read it without end (the module grew by about
  15 MB/s) and `vm_model_mount_info` of every VM would do the same. Every guest read is capped now: the run
  fails saying the guest answered out of bounds and changes nothing, and info reports that VM with
  `guest_error` and every other VM in full.
- **A volume writer swaps a mounted model's directory for a symlink to a host directory.** libvirt and
  virtiofsd resolved the path again at every VM start. Each model is served from a bind of its checked
  directory now: the guest keeps reading the pinned bytes, info reports `pin_stale`, a run refuses
  `source_path` naming the symlink, and converges once the volume is put back.
- **Another volume with the lab volume's name, on an engine of its own.** The host mount was recognised by the
  name alone: a task naming the other engine was served from the mounted volume. A volume is its UUID now: the
  task is refused naming both UUIDs, and nothing changes.
- **The host volume's client stopped (SIGSTOP).** A statfs timeout taken for a dead client would unmount and
  mount again the volume other VMs read from (the case then fails: the host mount has a new ID). A slow volume
  is reported slow now, the run fails saying so, and the host mount is the same one once the client goes on.
'''
ALL_MODELS = ['h-warm', 'r-same', 'r-a', 'r-b', 'r-c', 'r-flip', 'f-virtiofsd', 'f-client', 'f-libvirtd', 'f-libvirtd2', 'f-destroy',
              'f-reboot', 'f-agent', 's-redis', 's-bad', 'h-model', 'a-kept', 'a-fstab', 'a-swap', 'a-writer', 'a-name',
              'a-name2', 'a-slow']


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

    # --- attacks ----------------------------------------------------------------------------------
    # Each attack of the threat model (docs/security.md), tried once as an attacker would: each is deterministic,
    # so one try shows whether its defense holds. ``run`` makes the attack, checks the defense, and undoes the
    # attack in a finally; then the invariant must hold, the attack's models are unmounted and ``cleanup`` takes
    # its files away.
    def attack(self, case, models, run, note, cleanup=None):
        self.clean_start(models)
        started = time.monotonic()
        try:
            wrong = run()
        except Exception as exc:  # pylint: disable=broad-except
            wrong = ['the attack case itself failed: %s: %s' % (type(exc).__name__, exc)]
        problems = self.invariant()
        if problems:
            wrong.append('the invariant after it: %s' % problems)
        self.reset(models)
        if cleanup:
            cleanup()
        said = '; '.join(wrong) or (note() if callable(note) else note)
        self.row('attacks', case, 1, 0 if wrong else 1, '%s (1 try: deterministic; %.0f s)' % (said, time.monotonic() - started))

    def guest_sh(self, script):
        """(exit code, stdout, stderr) of a shell script in the lab guest."""
        return self.lab.guest(['sh', '-c', script])

    def attacks(self):
        self.attack_fstab()
        self.attack_swap()
        self.attack_same_name()
        self.attack_slow()

    def attack_fstab(self):
        """Guest root points /etc/fstab at /dev/zero: a persistent mount fails out of bounds and changes nothing;
        info reports that VM with guest_error and every other VM in full."""
        lab = self.lab
        reported = []

        def run():
            wrong = []
            lab.module('vm_model_mount', lab.mount_args('a-kept', mount_path='/mnt/a/kept'))
            # /etc/fstab as the guest has it: a symlink (the busybox guest's -> /persist/fstab) or a file.
            _code, target, _err = self.guest_sh('readlink /etc/fstab || true')
            target = target.strip()
            restore = ('rm -f /etc/fstab && ln -s %s /etc/fstab' % shlex.quote(target) if target
                       else 'rm -f /etc/fstab && mv /etc/fstab.aimodel-attack /etc/fstab')
            _problems, before = lab.invariant()
            code, _out, err = self.guest_sh(('' if target else 'mv /etc/fstab /etc/fstab.aimodel-attack && ')
                                            + 'ln -sf /dev/zero /etc/fstab')
            if code != 0:
                return ['the guest did not take the link: %s' % err]
            info = {}
            try:
                result = lab.module('vm_model_mount', lab.mount_args('a-fstab', mount_path='/mnt/a/fstab', persist=True))
                msg = result.get('msg') or ''
                if not result.get('failed') or 'out of bounds' not in msg or result.get('changed'):
                    wrong.append('the mount: %s' % (msg[:300] or 'succeeded'))
                info = lab.module('vm_model_mount_info', {'uri': lab.uri})
                _code, link, _err = self.guest_sh('readlink /etc/fstab; ls -d /mnt/a/fstab 2>/dev/null; true')
                if link.split() != ['/dev/zero']:
                    wrong.append('the guest\'s /etc/fstab or /mnt/a afterwards: %s' % link.split())
            finally:
                self.guest_sh(restore)
            vms = dict((v['vm'], v) for v in info.get('vms', []))
            this = vms.get(lab.vm, {})
            kept = [m for m in info.get('mounts', []) if m.get('vm') == lab.vm and m['model'] == 'a-kept']
            if 'out of bounds' not in (this.get('guest_error') or '') or not kept or 'guest_error' not in kept[0]['reasons']:
                wrong.append('info of %s: %s %s %s' % (lab.vm, info.get('msg'), this, [m.get('reasons') for m in kept]))
            others = [v for name, v in vms.items() if name != lab.vm]
            spoilt = [v for v in others if v.get('error') or v.get('guest_error')
                      or (v.get('active') and not v.get('guest_reachable'))]
            spoilt += [m for m in info.get('mounts', []) if m.get('vm') != lab.vm and 'guest_error' in m['reasons']]
            if not others or spoilt:
                wrong.append('info of the other VMs: %s' % (spoilt or 'none reported'))
            reported.append(len(others))
            _problems, after = lab.invariant()
            if after != before:
                wrong.append('the lab changed: %s' % sorted(k for k in before if before[k] != after.get(k)))
            return wrong

        self.attack('guest root points /etc/fstab at /dev/zero; a persistent mount, then info of every VM',
                    ['a-kept', 'a-fstab'], run,
                    lambda: 'failed out of bounds, the fstab link and the lab unchanged; info: guest_error for that '
                    'VM, the %d other VMs in full' % reported[0])

    def attack_swap(self):
        """A volume writer swaps a mounted model's directory for an absolute symlink to a host directory: the
        guest keeps the pinned bytes, info says pin_stale, a run refuses the symlink, and converges once the
        swap is undone."""
        lab = self.lab
        rw_point, ro_point = lab.volume_point(read_only=False), lab.volume_point()
        had_rw = lab.host_mount_id(rw_point) is not None
        secret = os.path.join(lab.work, 'host-secret')
        model_dir = os.path.join(rw_point, 'attack-swap', 'm')
        source = 'attack-swap/m'
        data = os.urandom(65536)
        pinned_sum = hashlib.sha256(data).hexdigest()
        guest_view = ('sha256sum /mnt/a/swap/data; ls -A /mnt/a/swap; '
                      'find /mnt/a /run/aimodel -name marker | sed "s/^/found /"; true')

        def seen(predicate):
            for _wait in range(100):
                if predicate():
                    return True
                time.sleep(0.2)
            return False

        def guest_reads():
            _code, out, _err = self.guest_sh(guest_view)
            lines = out.split('\n')
            problems = []
            if not lines or not lines[0].startswith(pinned_sum):
                problems.append('the guest reads other bytes')
            if 'marker' in out:
                problems.append('the guest sees the host directory')
            return problems and ['%s: %s' % (', '.join(problems), out.strip()[:300])]

        def run():
            # The host's read-write mount of the volume, as a writer of the volume has it.
            lab.module('vm_model_mount', lab.mount_args('a-writer', source_path=os.path.dirname(lab.vars['lab_model_source']),
                                                        read_only=False, guest_mount=False))
            os.makedirs(secret, mode=0o700)
            for name in ('marker', 'data'):
                with open(os.path.join(secret, name), 'w') as handle:
                    handle.write('host secret\n')
            shutil.rmtree(os.path.dirname(model_dir), ignore_errors=True)
            os.makedirs(model_dir)
            with open(os.path.join(model_dir, 'data'), 'wb') as handle:
                handle.write(data)
            if not seen(lambda: os.path.exists(os.path.join(ro_point, source, 'data'))):
                return ['the read-only mount does not see the model']
            first = lab.module('vm_model_mount', lab.mount_args('a-swap', source_path=source, mount_path='/mnt/a/swap'))
            if first.get('failed'):
                return ['the first mount: %s' % first.get('msg')]
            wrong = []
            os.rename(model_dir, model_dir + '.orig')
            os.symlink(secret, model_dir)
            try:
                if not seen(lambda: os.path.islink(os.path.join(ro_point, source))):
                    return ['the read-only mount does not see the swap']
                wrong += guest_reads() or []
                info = lab.module('vm_model_mount_info', {'uri': lab.uri, 'vm': lab.vm, 'model': 'a-swap'})
                mounts = info.get('mounts') or [{}]
                if mounts[0].get('host_pinned') != 'stale' or 'pin_stale' not in mounts[0].get('reasons', []):
                    wrong.append('info: %s' % mounts)
                rerun = lab.module('vm_model_mount', lab.mount_args('a-swap', source_path=source, mount_path='/mnt/a/swap'))
                if (not rerun.get('failed') or rerun.get('changed') or rerun.get('field') != 'source_path'
                        or '%s is a symbolic link' % source not in (rerun.get('msg') or '')):
                    wrong.append('the re-run: %s' % (rerun.get('msg') or rerun.get('mount')))
                wrong += guest_reads() or []
            finally:
                os.unlink(model_dir)
                os.rename(model_dir + '.orig', model_dir)
            if not seen(lambda: os.path.isdir(os.path.join(ro_point, source))
                        and not os.path.islink(os.path.join(ro_point, source))):
                return wrong + ['the read-only mount does not see the undo']
            healed = lab.module('vm_model_mount', lab.mount_args('a-swap', source_path=source, mount_path='/mnt/a/swap'))
            info = lab.module('vm_model_mount_info', {'uri': lab.uri, 'vm': lab.vm, 'model': 'a-swap'})
            if healed.get('failed') or [m['status'] for m in info.get('mounts', [])] != ['mounted']:
                wrong.append('after the undo: %s %s' % (healed.get('msg'), info.get('mounts')))
            return wrong + (guest_reads() or [])

        def cleanup():
            if os.path.ismount(rw_point):
                shutil.rmtree(os.path.dirname(model_dir), ignore_errors=True)
            shutil.rmtree(secret, ignore_errors=True)
            if not had_rw and os.path.ismount(rw_point):
                # The suite found no read-write host mount: it leaves none.
                subprocess.run(['umount', rw_point], check=False)

        self.attack('a volume writer swaps a mounted model\'s directory for a symlink to a host directory',
                    ['a-swap', 'a-writer'], run,
                    'the guest kept the pinned bytes, never the host\'s; info: pin_stale; the re-run refused '
                    'source_path naming the symlink; after the undo one run converged', cleanup)

    def attack_same_name(self):
        """Another volume with the lab volume's name, on an engine of its own, named in a task while the lab's is
        mounted: refused naming both UUIDs, nothing changed."""
        lab = self.lab
        other = os.path.join(lab.work, 'other-volume')
        other_url = 'sqlite3://%s/meta.db' % other

        def uuid_of(url):
            out = subprocess.run([lab.juicefs(), 'config', url], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 check=True).stdout
            return json.loads(out)['UUID']

        def run():
            lab.module('vm_model_mount', lab.mount_args('a-name', mount_path='/mnt/a/name'))
            os.makedirs(os.path.join(other, 'bucket'), mode=0o700)
            subprocess.run([lab.juicefs(), 'format', '--no-update', '--storage', 'file', '--bucket',
                            os.path.join(other, 'bucket') + '/', other_url, lab.vars['lab_volume_name']],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            uuids = [uuid_of(lab.vars['lab_meta_url']), uuid_of(other_url)]
            _problems, before = lab.invariant()
            result = lab.module('vm_model_mount', lab.mount_args(
                'a-name2', mount_path='/mnt/a/name2',
                volume={'name': lab.vars['lab_volume_name'], 'meta_url': other_url}))
            _problems, after = lab.invariant()
            wrong = []
            msg = result.get('msg') or ''
            if (uuids[0] == uuids[1] or not result.get('failed') or result.get('changed')
                    or result.get('field') != 'volume.meta_url' or not all(u in msg for u in uuids)):
                wrong.append('the run: %s (UUIDs %s)' % (msg[:300] or 'succeeded', uuids))
            if after != before:
                wrong.append('the lab changed: %s' % sorted(k for k in before if before[k] != after.get(k)))
            return wrong

        self.attack('another volume of the same name (its own engine) named while the lab\'s is mounted',
                    ['a-name', 'a-name2'], run, 'refused naming both UUIDs; the lab unchanged',
                    lambda: shutil.rmtree(other, ignore_errors=True))

    def attack_slow(self):
        """The host volume's JuiceFS client stopped (SIGSTOP): a run fails saying slow and does not remount; after
        SIGCONT the host mount is the same one and the guest reads the model."""
        lab = self.lab
        point = lab.volume_point()

        def run():
            lab.module('vm_model_mount', lab.mount_args('a-slow', mount_path='/mnt/a/slow'))
            mount_id = lab.host_mount_id(point)
            pids = lab.client_pids(point)
            if not pids or not mount_id:
                return ['no client of %s found (%s, mount %s)' % (point, pids, mount_id)]
            wrong = []
            try:
                for pid in pids:
                    os.kill(pid, signal.SIGSTOP)
                result = lab.module('vm_model_mount', lab.mount_args('a-slow', mount_path='/mnt/a/slow'))
                msg = result.get('msg') or ''
                if not result.get('failed') or result.get('changed') or 'slow or hung' not in msg \
                        or 'not remounted' not in msg:
                    wrong.append('the run: %s' % (msg[:300] or 'succeeded'))
            finally:
                for pid in pids:
                    os.kill(pid, signal.SIGCONT)
            if lab.host_mount_id(point) != mount_id:
                wrong.append('the host mount %s became %s' % (mount_id, lab.host_mount_id(point)))
            ok, detail = self.heal('a-slow', '/mnt/a/slow')
            if not ok:
                wrong.append('after SIGCONT: %s' % detail)
            return wrong

        self.attack('the host volume\'s client stopped (SIGSTOP), then a run', ['a-slow'], run,
                    'failed saying slow, not remounted; after SIGCONT the same host mount, one run converged '
                    'and the guest read the host\'s bytes')

    def table(self):
        lines = ['| area | case | tried | held | notes |', '| --- | --- | --- | --- | --- |']
        for area, case, tries, held, note in self.rows:
            lines.append('| %s | %s | %d | %d | %s |' % (area, case, tries, held, note.replace('|', '\\|')))
        return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--trials', type=int, default=10)
    parser.add_argument('--only', default='hostile,races,faults,secrets,attacks')
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
                         'runs it with 3 trials per race. Each attack is tried once (each is deterministic). '
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
