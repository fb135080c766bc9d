#!/usr/bin/env python
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The migration steps of the fleet test: playbook migrate_vm moves a guest with two models between the lab's
hypervisors (tests/fleet/run.py runs them after its own steps; alone: tests/fleet/migrate.py, on hypervisors
that are up).

From the controller's namespace (lab fleet-run):
  1. mounts two models (two names over the lab's model, at two mount paths, under a mount root of their own) in
     the guest of hv1;
  2. migrates it to hv2 and back with playbook migrate_vm; after each move checks the bytes of both models in the
     guest, that vm_model_mount_info on the destination says mounted with no orphan, and that the source has no
     domain, record, export bind, export directory or lock file of it left, nor the host volume (no other VM
     there uses it);
  3. a busy guest mount stops the migration before the VM moves (the guest back with both models on hv1);
  4. a failure after the detach (the memory sent to a port of the destination that its QEMU cannot listen on,
     since its sshd has it): the play fails naming the step, and the guest runs on hv1 with both models mounted
     and readable; a data URI on another host is refused before anything changes;
  5. with three hypervisors: hv2's guest moves to hv1, then playbook evacuate empties hv1 onto hv2 and hv3, two
     VMs at once (the bytes and the info checked where hv1's guest went, hv1 left with nothing of it), and both
     guests move back;
  6. unmounts both models.
"""

import json
import os
import re
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as fleetrun  # noqa: E402  pylint: disable=wrong-import-position

check, say, Failed = fleetrun.check, fleetrun.say, fleetrun.Failed
MOUNT_ROOT = '/var/lib/aimodel/migrate-volumes'
MODELS = {'mig-a': '/var/lib/models/mig-a', 'mig-b': '/var/lib/models/mig-b'}
MOVED = re.compile(r'moved from (\S+) to (\S+) \((\w+)\) with\s+(\d+) models; unavailable in the guest\s+([\d.]+) s, '
                   r'live migration\s+([\d.]+) s')


def models(n):
    """n model names and mount paths (the first two are MODELS)."""
    out = dict(MODELS)
    for i in range(len(out), n):
        out['mig-%c' % (ord('a') + i)] = '/var/lib/models/mig-%c' % (ord('a') + i)
    return dict(list(out.items())[:n])


class Migration:
    """The migration checks over a fleetrun.Fleet; the VM is hv1's guest wherever it runs."""

    def __init__(self, fleet, names=None):
        self.fleet = fleet
        self.vm = fleet.vm('hv1')
        self.models = dict(MODELS) if names is None else names
        self.volume = {'name': fleet.lab['lab_volume_name'], 'meta_url': fleet.lab['lab_meta_url'], 'mount_root': MOUNT_ROOT}

    def module(self, host, name, args, expect_rc=0):
        return self.fleet.ansible(['ansible', host, '-m', 'aimodel.kvm.' + name, '-a', json.dumps(args), '-o'],
                                  expect_rc=expect_rc)

    def guest_on(self, host, argv):
        conn, dom = fleetrun.labkit.open_domain(self.fleet.uri(host), self.vm)
        try:
            return fleetrun.labkit.run(dom, argv, timeout=60).text()
        finally:
            conn.close()

    def bytes_on(self, host):
        sums = self.fleet.sums
        for path in self.models.values():
            code, out, err = self.guest_on(host, ['sha256sum'] + [path + '/' + n for n in sorted(sums)])
            check(code == 0, '%s: sha256sum in %s failed (%s): %s' % (host, self.vm, code, err.strip()[:300]))
            seen = dict(reversed(line.split(None, 1)) for line in out.split('\n') if line.strip())
            check(seen == {path + '/' + n: d for n, d in sums.items()}, '%s: %s reads other bytes at %s' % (host, self.vm, path))

    def info(self, host):
        _rc, out = self.module(host, 'vm_model_mount_info', {'vm': self.vm})
        m = re.search(r'^\S+ \| (?:SUCCESS|CHANGED) => (\{.*\})$', out, re.M)
        check(m, 'info on %s: %s' % (host, out[-2000:]))
        return json.loads(m.group(1))

    def mounted_on(self, host):
        data = self.info(host)
        rows = sorted((x['model'], x['mount_path'], x['status'], x['guest_accessible']) for x in data['mounts'])
        check(rows == sorted((m, p, 'mounted', True) for m, p in self.models.items()), '%s: info says %s' % (host, rows))
        check(data['orphans'] == [], '%s: orphans %s' % (host, data['orphans']))
        return data['vms'][0]['uuid']

    def left_on(self, host, uuid):
        """Nothing of the VM on a hypervisor it left: no domain or record, no export bind, directory or lock."""
        data = self.info(host)
        check(data['vms'] == [] and data['mounts'] == [] and data['orphans'] == [], '%s still has %s: %s' % (host, self.vm, data))
        binds = [m for m in self.fleet.hv_mounts(host) if uuid in m[1]]
        check(not binds, '%s: mounts of %s left: %s' % (host, self.vm, binds))
        root = os.path.join(fleetrun.LAB, 'fleet', host, 'root')
        left = [os.path.join(d, n) for d in ('var/lib/aimodel/exports', 'run/aimodel', 'run/aimodel/locks')
                for n in (os.listdir(os.path.join(root, d)) if os.path.isdir(os.path.join(root, d)) else [])
                if uuid in n or self.vm in n]
        check(not left, '%s: files of %s left: %s' % (host, self.vm, left))
        # No other VM of the source uses the volume under this mount root: it was unmounted there.
        volumes = [m for m in self.fleet.hv_mounts(host) if m[1].startswith(MOUNT_ROOT + '/')]
        check(not volumes, '%s: host volume mounts left: %s' % (host, volumes))

    def mount(self, host):
        for model, path in self.models.items():
            self.module(host, 'vm_model_mount', {'vm': self.vm, 'model': model, 'source_path': self.fleet.lab['lab_model_source'],
                                                 'mount_path': path, 'volume': self.volume})

    def unmount(self, host):
        for model in self.models:
            self.module(host, 'vm_model_mount', {'vm': self.vm, 'model': model, 'state': 'absent'})

    def where(self):
        """The hypervisor that runs the VM now."""
        for host in self.fleet.hosts:
            if self.info(host)['vms']:
                return host
        raise Failed('%s runs on no hypervisor' % self.vm)

    def migrate(self, src, dst, *extra, expect_rc=0, vm=None):
        """Run migrate_vm; (rc, output, seconds, the play's figures: mode, models, unavailable_s, migration_s)."""
        t0 = time.monotonic()
        rc, out = self.fleet.ansible(['ansible-playbook', os.path.join(fleetrun.ROOT, 'playbooks', 'migrate_vm.yml'),
                                      '-e', 'migrate_vm=%s migrate_from=%s migrate_to=%s migrate_unsafe=true' % (vm or self.vm, src, dst)]
                                     + list(extra), expect_rc=expect_rc)
        took = time.monotonic() - t0
        m = MOVED.search(out.replace('\\n', ' '))
        figures = dict(mode=m.group(3), models=int(m.group(4)), unavailable_s=float(m.group(5)),
                       migration_s=float(m.group(6))) if m else None
        return rc, out, took, figures


def steps(fleet, times):
    """The migration steps, each timed into times; raises Failed."""
    mig = Migration(fleet)
    src, dst = 'hv1', 'hv2'
    step = fleetrun.step

    def clean():
        for host in fleet.hosts:
            mig.unmount(host)
        where = mig.where()
        if where != src:
            mig.migrate(where, src)
    step('migrate: clean', clean, times)

    def mount():
        mig.mount(src)
        mig.bytes_on(src)
        mig.mounted_on(src)
    step('migrate: mount two models on %s' % src, mount, times)
    uuid = mig.mounted_on(src)

    def there_and_back():
        for a, b in ((src, dst), (dst, src)):
            _rc, out, took, figures = mig.migrate(a, b)
            check(figures and figures['mode'] == 'detach' and figures['models'] == 2,
                  'the play does not report the move:\n%s' % out[-3000:])
            mig.bytes_on(b)
            mig.mounted_on(b)
            mig.left_on(a, uuid)
            say('migrated %s -> %s: the play %.1f s, the models unavailable %.2f s, the live migration %.2f s'
                % (a, b, took, figures['unavailable_s'], figures['migration_s']))
    step('migrate: %s -> %s -> %s' % (src, dst, src), there_and_back, times)

    def busy():
        # A process in the guest keeps its working directory inside one model: the detach refuses it.
        code, _out, err = mig.guest_on(src, ['sh', '-c', 'cd %s && sleep 600 </dev/null >/dev/null 2>&1 &' % MODELS['mig-b']])
        check(code == 0, 'could not start the busy process in the guest: %s' % err)
        try:
            rc, out, _took, _fig = mig.migrate(src, dst, expect_rc=None)
            flat = out.replace('\\n', ' ')
            check(rc != 0 and 'failed at step "detach the models on %s"' % src in flat and 'busy' in flat,
                  'a busy mount did not stop the migration at the detach:\n%s' % out[-3000:])
            check(re.search(r'The VM runs on %s\s+with its models mounted again' % src, flat),
                  'the failure does not say where the VM runs:\n%s' % out[-3000:])
            mig.mounted_on(src)
            mig.left_on(dst, uuid)
        finally:
            mig.guest_on(src, ['sh', '-c', 'for p in /proc/[0-9]*; do [ "$(readlink $p/cwd)" = %s ] && kill ${p#/proc/}; done; true'
                               % MODELS['mig-b']])
        mig.bytes_on(src)
    step('migrate: a busy guest mount stops it', busy, times)

    def failure():
        busy_port = 'tcp://%s:22' % fleet.env['LAB_%s_ADDR' % dst.upper()]
        rc, out, took, _fig = mig.migrate(src, dst, '-e', 'migrate_data_uri=' + busy_port, expect_rc=None)
        flat = out.replace('\\n', ' ')
        check(rc != 0 and 'failed at step "live-migrate %s to %s (detach)"' % (mig.vm, dst) in flat,
              'a migration to an address the destination cannot listen on did not fail at the migration:\n%s' % out[-3000:])
        check(re.search(r'The VM runs on %s\s+with its models mounted again' % src, flat),
              'the failure does not say where the VM runs:\n%s' % out[-3000:])
        mig.bytes_on(src)
        mig.mounted_on(src)
        mig.left_on(dst, uuid)
        say('a failed migration mounted the models again on %s; the play took %.1f s' % (src, took))
        # The guest's memory never goes to a host other than the destination: refused before anything changes.
        controller = fleet.env['LAB_%s_ADDR' % dst.upper()].rsplit('.', 1)[0] + '.1'
        rc, out, _took, _fig = mig.migrate(src, dst, '-e', 'migrate_data_uri=tcp://%s:49152' % controller, expect_rc=None)
        flat = out.replace('\\n', ' ')
        check(rc != 0 and 'migrate_data_uri: ' in flat and 'is not an address of %s' % dst in flat
              and 'TASK [Detach the models' not in out,
              'a data URI on another host was not refused at the preflight:\n%s' % out[-3000:])
        mig.mounted_on(src)
    step('migrate: a failure after the detach', failure, times)

    if len(fleet.hosts) >= 3:
        def evacuate():
            other = fleet.vm('hv2')
            mig.migrate('hv2', src, vm=other)
            t0 = time.monotonic()
            _rc, out = fleet.ansible(['ansible-playbook', os.path.join(fleetrun.ROOT, 'playbooks', 'evacuate.yml'), '-f', '2',
                                      '-e', 'evacuate_from=%s evacuate_to=hv2,hv3 evacuate_parallel=2 migrate_unsafe=true' % src])
            took = time.monotonic() - t0
            moved = sorted(m.group(0) for m in MOVED.finditer(out.replace('\\n', ' ')))
            check(len(moved) == 2, 'evacuate does not report two moves:\n%s' % out[-3000:])
            check(mig.info(src)['vms'] == [], '%s still runs a VM after its evacuation' % src)
            # The VMs in name order, the destinations in turn: hv1's guest to hv2, hv2's to hv3.
            where = mig.where()
            check(where == 'hv2', '%s went to %s, not to hv2 (the first destination for the first VM by name)' % (mig.vm, where))
            mig.bytes_on(where)
            mig.mounted_on(where)
            mig.left_on(src, uuid)
            conn, dom = fleetrun.labkit.open_domain(fleet.uri('hv3'), other)
            check(dom.isActive(), '%s does not run on hv3' % other)
            conn.close()
            say('evacuated %s (2 VMs, 2 at once) in %.1f s' % (src, took))
            mig.migrate(where, src)
            mig.migrate('hv3', 'hv2', vm=other)
            mig.bytes_on(src)
            mig.mounted_on(src)
        step('migrate: evacuate %s to hv2 and hv3' % src, evacuate, times)

    def unmount():
        mig.unmount(src)
        data = mig.info(src)
        check(data['mounts'] == [] and data['orphans'] == [], 'left on %s: %s' % (src, data))
    step('migrate: unmount', unmount, times)


def main():
    work = tempfile.mkdtemp(prefix='aimodel-migrate-')
    env = fleetrun.read_env(os.path.join(fleetrun.LAB, 'fleet', 'fleet.env'))
    fleet = fleetrun.Fleet(int(env['LAB_FLEET_COUNT']), work)
    times, ok, t_all = [], False, time.monotonic()
    try:
        steps(fleet, times)
        ok = True
    except (Failed, fleetrun.labkit.LabError, fleetrun.labkit.AgentError) as exc:
        say('FAILED: %s' % exc)
    say('%s in %.1f s: %s' % ('passed' if ok else 'FAILED', time.monotonic() - t_all, ', '.join('%s %.1f s' % t for t in times)))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
