# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Lab access for the reliability suite: run the modules through ansible-playbook, read the state of a
VM independently of the collection's own code (raw XML, raw metadata, raw guest files, the host's mount
table), and check the invariant after every case."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import json
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'lab'))

import labkit  # noqa: E402  pylint: disable=wrong-import-position

NAMESPACE = 'https://github.com/aimodel/kvm/mounts/v1'
# Our tags: a device of a model's own (aim-...), a VM's shared device of one access mode (aimodel-<key>).
OWN_PREFIX = 'aim-'
SHARED_PREFIX = 'aimodel-'
# The host's per-VM export trees (<EXPORTS>/<vm uuid>/<key>/<tag>) and where a guest mounts a shared device once.
EXPORTS = '/var/lib/aimodel/exports'
# Where the host mounts a volume (the modules' default mount_root): <VOLUMES>/<name>/<ro|rw>.
VOLUMES = '/var/lib/aimodel/volumes'
GUEST_BASE = '/run/aimodel'


class Lab:  # pylint: disable=too-many-instance-attributes
    def __init__(self):
        self.libvirt = labkit.libvirt()
        self.vars = labkit.lab_vars()
        self.uri = self.vars['lab_uri']
        self.vm = self.vars['lab_vm']
        self.work = tempfile.mkdtemp(prefix='reliability-', dir=self.vars['lab_dir'])
        os.chmod(self.work, 0o700)
        coll = os.path.join(self.work, 'collections', 'ansible_collections', 'aimodel')
        os.makedirs(coll)
        os.symlink(ROOT, os.path.join(coll, 'kvm'))
        self.collections = os.path.join(self.work, 'collections')
        self.playbook_bin = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
        self._n = 0

    # --- running the modules ---------------------------------------------------------------------
    def playbook(self, tasks, verbosity=0):
        """Start ansible-playbook on localhost with these tasks; returns a Popen (stdout: JSON)."""
        self._n += 1
        path = os.path.join(self.work, 'play-%d.json' % self._n)
        play = [{'name': 'reliability', 'hosts': 'localhost', 'connection': 'local', 'gather_facts': False,
                 'vars': {'ansible_python_interpreter': sys.executable}, 'tasks': tasks}]
        with open(path, 'w') as handle:
            json.dump(play, handle)
        results = path + '.results'
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=self.collections, AIMODEL_RESULTS_FILE=results,
                   ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, 'callback_plugins'), ANSIBLE_CALLBACKS_ENABLED='results_file',
                   ANSIBLE_LOCALHOST_WARNING='false', ANSIBLE_INVENTORY_UNPARSED_WARNING='false',
                   ANSIBLE_NOCOLOR='1')
        argv = [self.playbook_bin, '-i', 'localhost,', path] + (['-' + 'v' * verbosity] if verbosity else [])
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,  # pylint: disable=consider-using-with
                                stderr=subprocess.PIPE, cwd=self.work)
        proc.results_file = results
        return proc

    @staticmethod
    def results(proc, timeout=600):
        out, err = proc.communicate(timeout=timeout)
        text = out.decode('utf-8', 'replace')
        try:
            with open(proc.results_file) as handle:
                data = json.load(handle)
        except (OSError, ValueError) as exc:
            raise RuntimeError('ansible-playbook wrote no results (rc %s): %s %s'
                               % (proc.returncode, text[-2000:], err.decode()[-2000:])) from exc
        return data, text, err.decode('utf-8', 'replace')

    def module(self, name, args, verbosity=0):
        """Run one module task; returns its result dict."""
        task = {'name': name, 'aimodel.kvm.%s' % name: args, 'ignore_errors': True}
        results, _out, _err = self.results(self.playbook([task], verbosity))
        return results[0]

    def mount_args(self, model, **extra):
        args = {'uri': self.uri, 'vm': self.vm, 'model': model, 'source_path': self.vars['lab_model_source'],
                'volume': {'name': self.vars['lab_volume_name'], 'meta_url': self.vars['lab_meta_url']}}
        args.update(extra)
        return args

    def absent_args(self, model, **extra):
        args = {'uri': self.uri, 'vm': self.vm, 'model': model, 'state': 'absent', 'force': True}
        args.update(extra)
        return args

    # --- reading the truth, independently -------------------------------------------------------
    def domain(self):
        conn = self.libvirt.open(self.uri)
        return conn, conn.lookupByName(self.vm)

    def guest(self, argv, timeout=30):
        """(exit code, stdout, stderr) of argv in the guest, polled every 0.05 s; (None, '', '') when it still
        runs after timeout seconds. Raises labkit.AgentError when the agent refuses."""
        conn, dom = labkit.open_domain(self.uri, self.vm)
        try:
            return labkit.run(dom, argv, timeout, delay=labkit.every(0.05)).text()
        except labkit.GuestTimeout:
            return None, '', ''
        finally:
            conn.close()

    def uuid(self):
        conn, dom = self.domain()
        try:
            return dom.UUIDString()
        finally:
            conn.close()

    def export_dir(self, key='ro'):
        """The VM's export directory of one key: the source of its shared device aimodel-<key>."""
        return os.path.join(EXPORTS, self.uuid(), key)

    def wait_agent(self, timeout=180, vm=None):
        try:
            labkit.wait_agent(self.uri, vm or self.vm, timeout)
            return True
        except labkit.AgentError:
            return False

    def volume_point(self, read_only=True):
        """Where the host mounts the lab volume, read-only (it serves the VMs) or read-write."""
        return os.path.join(VOLUMES, self.vars['lab_volume_name'], 'ro' if read_only else 'rw')

    def juicefs(self):
        """The JuiceFS client of the lab venv."""
        return os.path.join(os.path.dirname(self.vars['lab_python']), 'juicefs')

    @staticmethod
    def host_mount_id(point):
        """The mount ID of the topmost host mount at ``point`` (a new one for every mount), or None."""
        with open('/proc/self/mountinfo') as handle:
            ids = [line.split()[0] for line in handle if len(line.split()) > 4 and _unescape(line.split()[4]) == point]
        return ids[-1] if ids else None

    @staticmethod
    def client_pids(point):
        """The PIDs of the JuiceFS client that serves the host mount at ``point`` (its supervisor and its FUSE
        server): the processes whose command line ends with that mount point. The client rewrites its command
        line as one string, its arguments separated by spaces."""
        found = []
        for pid in os.listdir('/proc'):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                with open('/proc/%s/cmdline' % pid, 'rb') as handle:
                    words = handle.read().decode('utf-8', 'replace').replace('\0', ' ').split()
            except OSError:
                continue
            if len(words) > 2 and words[-1] == point and os.path.basename(words[0]) == 'juicefs' and 'mount' in words:
                found.append(int(pid))
        return sorted(found)

    def is_active(self, name):
        conn = self.libvirt.open(self.uri)
        try:
            return bool(conn.lookupByName(name).isActive())
        except self.libvirt.libvirtError:
            return False
        finally:
            conn.close()

    def other_running_vms(self):
        """The lab's other VMs (lab.env's LAB_VM2, LAB_VM_Q35) that are running now."""
        names = [self.vars.get(key) for key in ('lab_vm2', 'lab_vm_q35')]
        return [name for name in names if name and name != self.vm and self.is_active(name)]

    def snapshot(self):
        """Everything a run could change: host mounts (volume mounts and the VM's export tree), live and persistent
        XML, metadata, guest mounts (mountinfo) and fstab."""
        conn, dom = self.domain()
        try:
            active = bool(dom.isActive())
            snap = {'active': active, 'uuid': dom.UUIDString()}
            snap['live_xml'] = _strip_volatile(dom.XMLDesc(0)) if active else None
            virt = self.libvirt
            snap['config_xml'] = _strip_volatile(dom.XMLDesc(virt.VIR_DOMAIN_XML_INACTIVE))
            for key, flag in (('live_meta', virt.VIR_DOMAIN_AFFECT_LIVE), ('config_meta', virt.VIR_DOMAIN_AFFECT_CONFIG)):
                try:
                    snap[key] = dom.metadata(virt.VIR_DOMAIN_METADATA_ELEMENT, NAMESPACE, flag) if (active or key == 'config_meta') else None
                except virt.libvirtError:
                    snap[key] = None
        finally:
            conn.close()
        with open('/proc/self/mountinfo') as handle:
            host = _mountinfo(handle.read())
        snap['host_mounts'] = sorted(m['target'] for m in host if m['fstype'] == 'fuse.juicefs')
        tree = os.path.join(EXPORTS, snap['uuid']) + '/'
        snap['export_tree'] = sorted((m['target'][len(tree):], m['root'], 'ro' in m['options'])
                                     for m in host if m['target'].startswith(tree))
        snap['guest_mounts'] = snap['guest_fstab'] = None
        if active:
            snap['guest_mounts'] = self.guest(['cat', '/proc/self/mountinfo'])[1]
            snap['guest_fstab'] = self.guest(['cat', '/etc/fstab'])[1]
        return snap

    def invariant(self):
        """Every device of ours has a record and every record its device (or is pending on a stopped VM): a shared
        device (aimodel-<key>, serving the VM's export directory of that key) for a record with ``device``, a device
        of the model's own (its tag) for a record without; no duplicate tags; the guest's mounts (each model a bind
        of its directory under its device's base mount, or its own device's mount) and fstab lines match the
        records; the host binds exactly the recorded models into the running VM's export tree, under read-only
        export directories. Returns a list of violations (empty = holds)."""
        snap = self.snapshot()
        problems = []
        live = _our_devices(snap['live_xml']) if snap['active'] else []
        config = _our_devices(snap['config_xml'])
        live_rec = _records(snap['live_meta'])
        config_rec = _records(snap['config_meta'])
        for where, devices in (('live', live), ('config', config)):
            tags = [tag for tag, _source in devices]
            dups = sorted(set(t for t in tags if tags.count(t) > 1))
            if dups:
                problems.append('duplicate %s devices: %s' % (where, dups))
            for tag, source in devices:
                if tag.startswith(SHARED_PREFIX) and source != os.path.join(EXPORTS, snap['uuid'], tag[len(SHARED_PREFIX):]):
                    problems.append('%s device %s serves %s, not its export directory' % (where, tag, source))
        if snap['active']:
            _compare(problems, 'live', set(t for t, _s in live), set(_device_of(r) for r in live_rec.values()))
            mounted = [r for r in live_rec.values() if r.get('guest_mount') != 'false']
            guest = set(_guest_mounts(snap['guest_mounts']))
            want = set(_want_guest_mount(r) for r in mounted)
            bases = set(m for m in guest if m[0].startswith(SHARED_PREFIX) and m[1] == '/')
            want_bases = set((r['device'], '/', _base(r['device'])) for r in mounted if r.get('device'))
            if guest - bases != want:
                problems.append('guest mounts %s != recorded %s' % (sorted(guest - bases), sorted(want)))
            if not want_bases <= bases or not set(b[0] for b in bases) <= set(_device_of(r) for r in live_rec.values()):
                problems.append('guest base mounts %s != devices in use %s' % (sorted(bases), sorted(want_bases)))
            persisted = [r for r in mounted if r.get('persist') != 'false']
            fstab = set(_fstab(snap['guest_fstab']))
            want_fstab = set(_want_fstab(r) for r in persisted)
            want_fstab |= set((r['device'], _base(r['device'])) for r in persisted if r.get('device'))
            if fstab != want_fstab:
                problems.append('guest fstab %s != recorded %s' % (sorted(fstab), sorted(want_fstab)))
            entries = set(t for t, _root, _ro in snap['export_tree'] if t.count('/') == 1)
            want_entries = set('%s/%s' % (r['device'][len(SHARED_PREFIX):], r['tag']) for r in live_rec.values()
                               if r.get('device'))
            if entries != want_entries:
                problems.append('host binds in the export tree %s != recorded %s' % (sorted(entries), sorted(want_entries)))
            views = dict((t, ro) for t, _root, ro in snap['export_tree'] if '/' not in t)
            for tag, _source in live:
                if tag.startswith(SHARED_PREFIX) and not views.get(tag[len(SHARED_PREFIX):]):
                    problems.append('export directory of %s is not a read-only mount' % tag)
        _compare(problems, 'config', set(t for t, _s in config), set(_device_of(r) for r in config_rec.values()))
        return problems, snap


def _compare(problems, where, devices, recorded):
    if devices - recorded:
        problems.append('%s devices without record: %s' % (where, sorted(devices - recorded)))
    if recorded - devices:
        problems.append('%s records without device: %s' % (where, sorted(recorded - devices)))


def _strip_volatile(xml):
    # Runtime counters that change by themselves are not a change made by a run.
    return re.sub(r"<(currentMemory|vcpu)[^>]*>[^<]*</\1>", '', xml)


def _device_of(record):
    """The tag of the device that serves a record: its shared device, or the model's own device."""
    return record.get('device') or record['tag']


def _base(device):
    """Where the guest mounts a shared device once."""
    return '%s/%s' % (GUEST_BASE, device[len(SHARED_PREFIX):])


def _want_guest_mount(record):
    if record.get('device'):
        return record['device'], '/' + record['tag'], record['mount_path']
    return record['tag'], '/', record['mount_path']


def _want_fstab(record):
    if record.get('device'):
        return '%s/%s' % (_base(record['device']), record['tag']), record['mount_path']
    return record['tag'], record['mount_path']


def _ours(tag):
    return tag.startswith(OWN_PREFIX) or tag.startswith(SHARED_PREFIX)


def _our_devices(xml):
    """(tag, source) of the virtiofs devices of ours in a domain XML."""
    if not xml:
        return []
    root = ET.fromstring(xml)
    found = []
    for fs in root.findall('./devices/filesystem'):
        target, source = fs.find('target'), fs.find('source')
        tag = (target.get('dir') if target is not None else None) or ''
        if _ours(tag):
            found.append((tag, source.get('dir') if source is not None else None))
    return found


def _records(xml):
    if not xml:
        return {}
    root = ET.fromstring(xml)
    return dict((m.get('model'), dict(m.attrib)) for m in root.iter() if m.tag.rsplit('}', 1)[-1] == 'mount')


def _unescape(field):
    return re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)), field)


def _mountinfo(text):
    found = []
    for line in (text or '').splitlines():
        left, sep, right = line.partition(' - ')
        fields, rest = left.split(), right.split()
        if sep and len(fields) >= 6 and len(rest) >= 2:
            found.append({'root': _unescape(fields[3]), 'target': _unescape(fields[4]), 'options': fields[5].split(','),
                          'fstype': rest[0], 'source': _unescape(rest[1])})
    return found


def _guest_mounts(text):
    """(source, root, target) of the guest's virtiofs mounts of our devices."""
    for mount in _mountinfo(text):
        if mount['fstype'] == 'virtiofs' and _ours(mount['source']):
            yield mount['source'], mount['root'], mount['target']


def _fstab(text):
    """(first field, mount point) of the guest's fstab lines of ours: our devices' mounts and binds from a base."""
    for line in (text or '').splitlines():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith('#') and (
                _ours(parts[0]) or parts[0].startswith(GUEST_BASE + '/')):
            yield parts[0], parts[1]
