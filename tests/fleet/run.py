#!/usr/bin/env python
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet test: the collection's playbooks across the lab's hypervisors, over SSH, as a fleet runs them.

  tests/fleet/run.py [--hypervisors N] [--keep] [--no-up]

It brings up hv1..hvN (tests/lab/lab up --hypervisors N: each its own namespaces, libvirtd, sshd and guest;
see tests/lab/fleet.sh), checks they are apart (a mount of the machine below /var/lib/aimodel reaches none, each
has its own host UUID and host name) and, from the controller's namespace (lab fleet-run), with the collection
this script belongs to:
  1. unmounts whatever an earlier run left (playbook unmount_models, all);
  2. mounts the lab's model in every hypervisor's guest with one run of playbook mount_models (forks = N), and
     checks the bytes from inside each guest (sha256 of every file, against the lab's SHA256SUMS) and that a
     second run changes nothing;
  3. reads the fleet with the inventory plugin aimodel.kvm.model_mounts over qemu+ssh://hvI/system: every VM is
     a host with its mount recorded and mounted, in the groups of its hypervisor and of the model, and
     `ansible -i SOURCE model_<model> --list-hosts` lists them all; and the report playbook's table;
  4. unmounts everything, mounts again in two slices run at the same time (--limit, as AWX job slicing splits a
     job: host k in slice k mod 2), and checks the end state is the one the single run gave;
  5. stops one hypervisor's libvirtd and adds a hypervisor that cannot be reached: mount_models and report run on,
     report both as failed, and the others are converged; lab up repairs the stopped one (and restarts its guest),
     whose model is back from the hook and the guest's fstab, and the next runs change nothing;
  6. unmounts everything and checks the guests, the hypervisors' mount tables and the records are empty;
  7. moves hv1's guest with two models to hv2 and back with playbook migrate_vm, and checks that a busy guest
     mount or a failed migration leaves it running with its models (tests/fleet/migrate.py);
and takes the hypervisors down (unless --keep). Every step is timed; it exits non-zero when a check fails.
"""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'lab'))
import labkit  # noqa: E402  pylint: disable=wrong-import-position

LAB = os.environ.get('AIMODEL_LAB', '/var/tmp/aimodel-lab')
LAB_SCRIPT = os.path.join(ROOT, 'tests', 'lab', 'lab')
MOUNT_PATH = '/var/lib/models/fleet'
RECAP = re.compile(r'^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', re.M)


class Failed(Exception):
    pass


def say(text):
    print('[fleet] %s' % text, flush=True)


def check(cond, text):
    if not cond:
        raise Failed(text)


def collections_path(work):
    """Where ansible finds this collection: the ansible_collections tree this checkout is in, else a link to it
    made below work."""
    parts = ROOT.split(os.sep)
    if len(parts) > 3 and parts[-3] == 'ansible_collections':
        return os.sep.join(parts[:-3])
    top = os.path.join(work, 'collections')
    os.makedirs(os.path.join(top, 'ansible_collections', 'aimodel'), exist_ok=True)
    os.symlink(ROOT, os.path.join(top, 'ansible_collections', 'aimodel', 'kvm'))
    return top


def plain(data):
    """ansible-inventory's JSON without its markers of unsafe text ({"__ansible_unsafe": text})."""
    if isinstance(data, dict):
        if set(data) == {'__ansible_unsafe'}:
            return data['__ansible_unsafe']
        return {k: plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [plain(v) for v in data]
    return data


def read_env(path):
    """KEY=shell-quoted value lines (the lab's fleet.env) as a dict."""
    values = {}
    with open(path, encoding='utf-8') as handle:
        for line in handle:
            key, sep, raw = line.strip().partition('=')
            if sep and not key.startswith('#'):
                parts = shlex.split(raw)
                values[key] = parts[0] if parts else ''
    return values


class Fleet:
    def __init__(self, n, work):
        self.n = n
        self.work = work
        self.collections = collections_path(work)
        self.lab = labkit.lab_vars(os.path.join(LAB, 'lab.env'))
        self.env = read_env(os.path.join(LAB, 'fleet', 'fleet.env'))
        check(int(self.env['LAB_FLEET_COUNT']) == n, 'the lab has %s hypervisors, not %d' % (self.env['LAB_FLEET_COUNT'], n))
        self.hosts = ['hv%d' % i for i in range(1, n + 1)]
        self.inventory = self.env['LAB_FLEET_INVENTORY']
        self.sums = self._sums()
        self.vars_file = os.path.join(work, 'fleet_vars.json')
        with open(self.vars_file, 'w', encoding='utf-8') as handle:
            json.dump(self.playbook_vars(), handle)

    def _sums(self):
        with open(os.path.join(LAB, 'model', 'SHA256SUMS'), encoding='utf-8') as handle:
            return dict(reversed(line.split(None, 1)) for line in handle.read().split('\n') if line.strip())

    def playbook_vars(self):
        model = self.lab['lab_model']
        return {
            'model_mounts_volumes': {self.lab['lab_volume_name']: {'meta_url': self.lab['lab_meta_url']}},
            'model_mounts_catalog': {model: {'volume': self.lab['lab_volume_name'],
                                             'source_path': self.lab['lab_model_source'], 'mount_path': MOUNT_PATH}},
            # per hypervisor: its guest (a host variable of the lab's inventory) has the model
            'model_mounts_vms': "{{ {lab_vm: ['%s']} }}" % model,
        }

    def uri(self, host):
        return self.env['LAB_%s_URI' % host.upper()]

    def vm(self, host):
        return self.env['LAB_%s_VM' % host.upper()]

    # ------------------------------------------------------------------------------------------ running things
    def ansible(self, argv, inventory=None, expect_rc=0, extra_env=None, background=False):
        """One ansible command in the controller's namespace; (rc, output) or, with background, the Popen."""
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=self.collections, ANSIBLE_NOCOLOR='1',
                   ANSIBLE_RETRY_FILES_ENABLED='false', ANSIBLE_HOST_KEY_CHECKING='true',
                   ANSIBLE_PYTHON_INTERPRETER=self.lab['lab_python'], LC_ALL='C.UTF-8',
                   PATH=os.path.dirname(self.lab['lab_python']) + os.pathsep + os.environ.get('PATH', ''))
        env.pop('LIBVIRT_DEFAULT_URI', None)
        env.update(extra_env or {})
        cmd = ['bash', LAB_SCRIPT, 'fleet-run'] + argv[:1] + ['-i', inventory or self.inventory] + argv[1:]
        if background:
            return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
        if expect_rc is not None and proc.returncode != expect_rc:
            sys.stdout.write(proc.stdout[-6000:])
            raise Failed('%s: exit %d, expected %d' % (' '.join(shlex.quote(a) for a in argv[:2]), proc.returncode, expect_rc))
        return proc.returncode, proc.stdout

    def playbook(self, name, *args, **kw):
        return self.ansible(['ansible-playbook', os.path.join(ROOT, 'playbooks', name), '-f', str(self.n),
                             '-e', '@' + self.vars_file] + list(args), **kw)

    @staticmethod
    def recap(output):
        return {m.group(1): dict(ok=int(m.group(2)), changed=int(m.group(3)), unreachable=int(m.group(4)),
                                 failed=int(m.group(5))) for m in RECAP.finditer(output)}

    def guest(self, host, argv):
        conn, dom = labkit.open_domain(self.uri(host), self.vm(host))
        try:
            return labkit.run(dom, argv, timeout=60).text()
        finally:
            conn.close()

    def hv_mounts(self, host):
        """The hypervisor's own mount table (its namespace), as (fstype, mount point) pairs."""
        pid = open(os.path.join(LAB, 'fleet', host, 'pids', 'anchor.pid'), encoding='ascii').read().strip()
        with open('/proc/%s/mounts' % pid, encoding='utf-8') as handle:
            return [(f[2], f[1]) for f in (line.split() for line in handle) if len(f) > 2]

    # ------------------------------------------------------------------------------------------ checks
    def check_isolation(self):
        """A mount the machine makes below the collection's paths does not reach a hypervisor (as a host's own
        volume mounts never reach another host), and each hypervisor has its own host UUID and host name."""
        probe = tempfile.mkdtemp(prefix='.fleet-probe-', dir='/var/lib/aimodel')
        try:
            subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'aimodel-fleet-probe', probe], check=True)
            try:
                for host in self.hosts:
                    seen = [m for m in self.hv_mounts(host) if m[1] == probe]
                    check(not seen, '%s sees the machine\'s mount at %s: %s' % (host, probe, seen))
            finally:
                subprocess.run(['umount', probe], check=True)
        finally:
            os.rmdir(probe)
        uuids = set()
        _rc, out = self.ansible(['ansible', ','.join(self.hosts), '-o', '-m', 'ansible.builtin.shell',
                                 '-a', 'echo "$(hostname) $(virsh -q capabilities | grep -m1 -o "<uuid>[^<]*")"'])
        for host in self.hosts:
            found = re.search(r'^%s \| CHANGED .*\(stdout\) (\S+) <uuid>([0-9a-f-]+)' % host, out, re.M)
            check(found, '%s: no host name and UUID in:\n%s' % (host, out[-1000:]))
            check(found.group(1) == host, '%s: its host name is %s' % (host, found.group(1)))
            uuids.add(found.group(2))
        check(len(uuids) == len(self.hosts), 'the hypervisors share host UUIDs: %s' % sorted(uuids))

    def check_bytes(self, host):
        code, out, err = self.guest(host, ['sha256sum'] + [MOUNT_PATH + '/' + name for name in sorted(self.sums)])
        check(code == 0, '%s: sha256sum in the guest failed (%s): %s' % (host, code, err.strip()[:300]))
        seen = dict(reversed(line.split(None, 1)) for line in out.split('\n') if line.strip())
        want = {MOUNT_PATH + '/' + name: digest for name, digest in self.sums.items()}
        check(seen == want, '%s: the guest reads other bytes than the model has: %s' % (
            host, sorted(k for k in want if seen.get(k) != want[k])[:5]))

    def check_unmounted(self, host):
        code, out, _err = self.guest(host, ['cat', '/proc/mounts'])
        check(code == 0 and MOUNT_PATH not in out and 'virtiofs' not in out,
              '%s: the guest still has a model mount: %s' % (host, [ln for ln in out.split('\n') if 'virtiofs' in ln or MOUNT_PATH in ln]))
        # The volume stays mounted on the hypervisor (one mount per volume per host, for the next model); the
        # VM's export tree, which held its models, is gone.
        left = [m for m in self.hv_mounts(host) if m[1].startswith('/var/lib/aimodel/exports/')]
        check(not left, '%s: mounts left on the hypervisor: %s' % (host, left))

    def state(self, hosts=None):
        """What vm_model_mount_info reports on each hypervisor: {host: [(vm, model, mount_path, status)]}."""
        hosts = hosts or self.hosts
        _rc, out = self.ansible(['ansible', ','.join(hosts), '-m', 'aimodel.kvm.vm_model_mount_info', '-o'])
        found = {}
        for line in out.split('\n'):
            m = re.match(r'^(\S+) \| (SUCCESS|CHANGED) => (\{.*\})$', line)
            if m:
                data = json.loads(m.group(3))
                found[m.group(1)] = sorted((mnt['vm'], mnt['model'], mnt['mount_path'], mnt['status'])
                                           for mnt in data['mounts'])
        check(set(found) == set(hosts), 'info answered for %s, not %s:\n%s' % (sorted(found), hosts, out[-3000:]))
        return found


def step(name, func, times):
    t0 = time.monotonic()
    say('%s ...' % name)
    func()
    times.append((name, time.monotonic() - t0))
    say('%s: %.1f s' % (name, times[-1][1]))


def main():  # pylint: disable=too-many-statements
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--hypervisors', type=int, default=3)
    parser.add_argument('--keep', action='store_true', help='leave the hypervisors up')
    parser.add_argument('--no-up', action='store_true', help='use the hypervisors that are up')
    opts = parser.parse_args()
    times = []
    t_all = time.monotonic()
    if not opts.no_up:
        step('up', lambda: subprocess.run(['bash', LAB_SCRIPT, 'up', '--hypervisors', str(opts.hypervisors)],
                                          check=True, stdout=subprocess.DEVNULL), times)
    work = tempfile.mkdtemp(prefix='aimodel-fleet-')
    fleet = Fleet(opts.hypervisors, work)
    model = fleet.lab['lab_model']
    ok = False
    try:
        step('isolation', fleet.check_isolation, times)
        step('clean', lambda: fleet.playbook('unmount_models.yml', '-e', 'aimodel_unmount_all=true'), times)

        single = {}

        def mount_all():
            _rc, out = fleet.playbook('mount_models.yml')
            recap = fleet.recap(out)
            check(all(recap.get(h, {}).get('changed', 0) > 0 for h in fleet.hosts), 'not every hypervisor changed: %s' % recap)
            for host in fleet.hosts:
                fleet.check_bytes(host)
            _rc, out = fleet.playbook('mount_models.yml')
            recap = fleet.recap(out)
            check(all(recap[h]['changed'] == 0 and recap[h]['failed'] == 0 for h in fleet.hosts),
                  'a second run changed something: %s' % recap)
            single.update(fleet.state())
            for host in fleet.hosts:
                check(single[host] == [(fleet.vm(host), model, MOUNT_PATH, 'mounted')], '%s: info reports %s' % (host, single[host]))
        step('mount', mount_all, times)

        def inventory_plugin():
            source = fleet.env['LAB_FLEET_PLUGIN_SOURCE']
            _rc, out = fleet.ansible(['ansible-inventory', '--list'], inventory=source)
            data = plain(json.loads(out[out.index('{'):]))
            hostvars = data['_meta']['hostvars']
            group = 'model_' + re.sub(r'[^A-Za-z0-9_]', '_', model)
            for host in fleet.hosts:
                vm = fleet.vm(host)
                check(vm in hostvars, 'the plugin does not list %s: %s' % (vm, sorted(hostvars)))
                mounts = hostvars[vm].get('aimodel_mounts', [])
                check([(x['model'], x['mount_path'], x['status']) for x in mounts] == [(model, MOUNT_PATH, 'recorded')],
                      '%s: %s' % (vm, mounts))
                check(vm in data.get('hypervisor_' + host, {}).get('hosts', []), '%s is not in group hypervisor_%s' % (vm, host))
            _rc, out = fleet.ansible(['ansible', group, '--list-hosts'], inventory=source)
            listed = sorted(line.strip() for line in out.split('\n')[1:] if line.strip())
            check(listed == sorted(fleet.vm(h) for h in fleet.hosts), '%s --list-hosts: %s' % (group, listed))
            report = os.path.join(work, 'report.txt')
            fleet.playbook('report.yml', '-e', 'aimodel_report_file=' + report)
            with open(report, encoding='utf-8') as handle:
                table = handle.read()
            for host in fleet.hosts:
                check(re.search(r'%s\s.*%s.*mounted' % (host, re.escape(fleet.vm(host))), table), 'report: no mounted row for %s:\n%s' % (host, table))
        step('inventory', inventory_plugin, times)

        def slices():
            fleet.playbook('unmount_models.yml', '-e', 'aimodel_unmount_all=true')
            for host in fleet.hosts:
                fleet.check_unmounted(host)
            parts = [','.join(fleet.hosts[k::2]) for k in range(2)]
            procs = [fleet.playbook('mount_models.yml', '--limit', part, background=True) for part in parts if part]
            for proc in procs:
                out = proc.communicate()[0]
                if proc.returncode:
                    sys.stdout.write(out[-6000:])
                check(proc.returncode == 0, 'a slice failed (exit %d)' % proc.returncode)
            check(fleet.state() == single, 'the slices ended elsewhere than the single run: %s vs %s' % (fleet.state(), single))
            for host in fleet.hosts:
                fleet.check_bytes(host)
        step('slices', slices, times)

        def down_hypervisor():
            bad = fleet.hosts[-1]
            pidfile = os.path.join(LAB, 'fleet', bad, 'pids', 'libvirtd.pid')
            pid = int(open(pidfile, encoding='ascii').read().strip())
            say('stopping the libvirtd of %s (pid %d) and adding hv99, which does not answer' % (bad, pid))
            os.kill(pid, 15)
            for _wait in range(100):
                if not os.path.exists('/proc/%d' % pid):
                    break
                time.sleep(0.1)
            inv = os.path.join(work, 'with_down.yml')
            with open(fleet.inventory, encoding='utf-8') as handle:
                text = handle.read()
            text = text.replace('      vars:\n', '        hv99:\n          ansible_host: 198.18.0.99\n          lab_vm: nowhere\n      vars:\n', 1)
            with open(inv, 'w', encoding='utf-8') as handle:
                handle.write(text)
            rc, out = fleet.playbook('mount_models.yml', inventory=inv, expect_rc=None)
            recap = fleet.recap(out)
            check(rc != 0, 'mount_models succeeded with a hypervisor down')
            check(recap.get(bad, {}).get('failed', 0) >= 1, '%s is not reported failed: %s' % (bad, recap))
            check(recap.get('hv99', {}).get('unreachable', 0) >= 1, 'hv99 is not reported unreachable: %s' % recap)
            for host in fleet.hosts[:-1]:
                check(recap[host]['failed'] == 0 and recap[host]['unreachable'] == 0, '%s failed with the others: %s' % (host, recap))
            report = os.path.join(work, 'report-down.txt')
            rc, out = fleet.playbook('report.yml', '-e', 'aimodel_report_file=' + report, inventory=inv, expect_rc=None)
            check(rc != 0, 'report succeeded with a hypervisor down')
            with open(report, encoding='utf-8') as handle:
                table = handle.read()
            for host in fleet.hosts[:-1]:
                check(re.search(r'%s\s.*mounted' % host, table), 'report: no row for %s:\n%s' % (host, table))
            check(bad in table and 'hv99' in table, 'report does not name the hypervisors that did not answer:\n%s' % table)
            # lab up starts the libvirtd again and restarts the guest that outlived it (libvirt before 9.2 refuses
            # its virtiofs hot-plugs then); the hook and the guest's fstab bring its model back at boot.
            subprocess.run(['bash', LAB_SCRIPT, 'up', '--hypervisors', str(fleet.n)], check=True, stdout=subprocess.DEVNULL)
            fleet.check_bytes(bad)
            _rc, out = fleet.playbook('mount_models.yml')
            recap = fleet.recap(out)
            check(recap[bad]['failed'] == 0, '%s after its libvirtd came back: %s' % (bad, recap))
            _rc, out = fleet.playbook('mount_models.yml')
            recap = fleet.recap(out)
            check(all(recap[h]['changed'] == 0 and recap[h]['failed'] == 0 for h in fleet.hosts),
                  'a run after the repair changed something: %s' % recap)
        step('down', down_hypervisor, times)

        def unmount():
            fleet.playbook('unmount_models.yml', '-e', 'aimodel_unmount_all=true')
            for host in fleet.hosts:
                fleet.check_unmounted(host)
            state = fleet.state()
            check(all(not rows for rows in state.values()), 'records left: %s' % state)
        step('unmount', unmount, times)
        # The migration steps (tests/fleet/migrate.py) use this module's Fleet and checks.
        sys.modules.setdefault('run', sys.modules[__name__])
        import migrate  # pylint: disable=import-outside-toplevel
        migrate.steps(fleet, times)
        ok = True
    except (Failed, labkit.LabError, labkit.AgentError, subprocess.CalledProcessError) as exc:
        say('FAILED: %s' % exc)
    finally:
        if not opts.keep:
            step('down-lab', lambda: subprocess.run(['bash', LAB_SCRIPT, 'fleet-down'], check=False,
                                                    stdout=subprocess.DEVNULL), times)
    say('%s in %.1f s: %s' % ('passed' if ok else 'FAILED', time.monotonic() - t_all,
                              ', '.join('%s %.1f s' % t for t in times)))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
