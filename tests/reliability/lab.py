# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Lab access for the reliability suite: run the modules through ansible-playbook, read the state of a
VM independently of the collection's own code (raw XML, raw metadata, raw guest files), and check the
invariant after every case."""

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

    def wait_agent(self, timeout=180):
        try:
            labkit.wait_agent(self.uri, self.vm, timeout)
            return True
        except labkit.AgentError:
            return False

    def snapshot(self):
        """Everything a run could change: host mounts, live and persistent XML, metadata, guest mounts and fstab."""
        conn, dom = self.domain()
        try:
            active = bool(dom.isActive())
            snap = {'active': active}
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
            snap['host_mounts'] = sorted(line.split(' - ')[0].split()[4] for line in handle if 'fuse.juicefs' in line)
        snap['guest_mounts'] = snap['guest_fstab'] = None
        if active:
            snap['guest_mounts'] = self.guest(['cat', '/proc/mounts'])[1]
            snap['guest_fstab'] = self.guest(['cat', '/etc/fstab'])[1]
        return snap

    def invariant(self):
        """Every device of ours has a record and every record its device (or is pending on a stopped VM); no duplicate
        tags; the guest's mounts and fstab match the records. Returns a list of violations (empty = holds)."""
        snap = self.snapshot()
        problems = []
        live = _our_devices(snap['live_xml']) if snap['active'] else []
        config = _our_devices(snap['config_xml'])
        live_rec = _records(snap['live_meta'])
        config_rec = _records(snap['config_meta'])
        for where, devices in (('live', live), ('config', config)):
            dups = sorted(set(t for t in devices if devices.count(t) > 1))
            if dups:
                problems.append('duplicate %s devices: %s' % (where, dups))
        if snap['active']:
            _compare(problems, 'live', set(live), set(r['tag'] for r in live_rec.values()))
            guest = set((m[0], m[1]) for m in _guest_mounts(snap['guest_mounts']))
            want = set((r['tag'], r['mount_path']) for r in live_rec.values() if r.get('guest_mount') != 'false')
            if guest != want:
                problems.append('guest mounts %s != recorded %s' % (sorted(guest), sorted(want)))
            fstab = set(_fstab(snap['guest_fstab']))
            want_fstab = set((r['tag'], r['mount_path']) for r in live_rec.values()
                             if r.get('guest_mount') != 'false' and r.get('persist') != 'false')
            if fstab != want_fstab:
                problems.append('guest fstab %s != recorded %s' % (sorted(fstab), sorted(want_fstab)))
        _compare(problems, 'config', set(config), set(r['tag'] for r in config_rec.values()))
        return problems, snap


def _compare(problems, where, devices, recorded):
    if devices - recorded:
        problems.append('%s devices without record: %s' % (where, sorted(devices - recorded)))
    if recorded - devices:
        problems.append('%s records without device: %s' % (where, sorted(recorded - devices)))


def _strip_volatile(xml):
    # Runtime counters that change by themselves are not a change made by a run.
    return re.sub(r"<(currentMemory|vcpu)[^>]*>[^<]*</\1>", '', xml)


def _our_devices(xml):
    if not xml:
        return []
    root = ET.fromstring(xml)
    tags = []
    for fs in root.findall('./devices/filesystem'):
        target = fs.find('target')
        if target is not None and (target.get('dir') or '').startswith('aim-'):
            tags.append(target.get('dir'))
    return tags


def _records(xml):
    if not xml:
        return {}
    root = ET.fromstring(xml)
    return dict((m.get('model'), dict(m.attrib)) for m in root.iter() if m.tag.rsplit('}', 1)[-1] == 'mount')


def _guest_mounts(text):
    for line in (text or '').splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == 'virtiofs' and parts[0].startswith('aim-'):
            yield parts[0], parts[1]


def _fstab(text):
    for line in (text or '').splitlines():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith('#') and parts[0].startswith('aim-'):
            yield parts[0], parts[1]
