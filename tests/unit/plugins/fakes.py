# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A fake libvirt domain and guest, at the one boundary the collection has (``_libvirt.Domain``).

It behaves like the real thing where the lab showed it: libvirt does not refuse a duplicate tag
on a live attach, refuses it on a config attach, and a guest mounts a tag only once the device is
attached.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import base64
import json
import zlib
import xml.etree.ElementTree as ET

from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _record


class FakeGuest:
    def __init__(self):
        self.mounts = [('proc', '/proc', 'proc', 'rw'), ('/dev/vda', '/persist', 'ext4', 'rw')]
        self.files = {'/etc/fstab': '# static\n/dev/vda /persist ext4 rw 0 0\n'}
        self.busy = set()
        self.dirs = set(['/mnt', '/persist', '/etc'])
        self.stale = set()
        self.fail_mount = None
        self.reachable = True
        self.no_file_ops = False
        self.read_only_files = set()
        self.next_mount_id = 200
        self.argvs = []

    @staticmethod
    def mount_id(mount):
        """A mount made by the fake's mount command carries its ID (5th field); others get one from their value."""
        return mount[4] if len(mount) > 4 else 1000 + zlib.crc32(repr(mount).encode()) % 100000

    def mount_dev(self, mount):
        return '0:%d' % (self.mount_id(mount) % 1000)

    def proc_mounts(self):
        """/proc/self/mountinfo of the fake guest."""
        return ''.join('%d 1 %s / %s %s - %s %s %s\n' % (self.mount_id(m), self.mount_dev(m), m[1].replace(' ', '\\040'),
                                                         m[3], m[2], m[0], m[3]) for m in self.mounts)

    def execute(self, argv, devices, stdin=None):
        self.argvs.append(list(argv))
        cmd = argv[0]
        if cmd == 'sh' and argv[1:3] == ['-c', _guest.WRITE_VALUE_SCRIPT] and len(argv) == 6:
            self.files[argv[5]] = argv[4] + '\n'
            return 0, '', ''
        if cmd == 'sh':
            if argv[1:3] != ['-c', _guest.REPLACE_FILE_SCRIPT] or len(argv) != 5:
                raise AssertionError('unexpected guest shell %r' % (argv,))
            path = argv[4]
            if path in self.read_only_files:
                return 1, '', "sh: can't create %s: Read-only file system\n" % path
            self.files[path] = (stdin or b'').decode()
            return 0, '', ''
        if cmd == 'cat':
            if argv[1] == '/proc/self/mountinfo':
                return 0, self.proc_mounts(), ''
            if argv[1] in self.files:
                return 0, self.files[argv[1]], ''
            return 1, '', 'cat: can\'t open \'%s\': No such file or directory\n' % argv[1]
        if cmd == 'sync':
            return 0, '', ''
        if cmd == 'mkdir':
            path = argv[-1]
            if path in self.files:
                return 1, '', "mkdir: can't create directory '%s': File exists\n" % path
            created = []
            parts = path.strip('/').split('/')
            for index in range(len(parts)):
                sub = '/' + '/'.join(parts[:index + 1])
                if sub not in self.dirs:
                    self.dirs.add(sub)
                    created.append(sub)
            return 0, ''.join("created directory: '%s'\n" % d for d in created), ''
        if cmd == 'rmdir':
            for path in argv[1:]:
                self.dirs.discard(path)
            return 0, '', ''
        if cmd == 'stat':
            paths = argv[4:]
            dead = [p for p in paths if p in self.stale]
            out = ''.join(p + '\n' for p in paths if p not in dead)
            err = ''.join("stat: can't read file system information for '%s': Transport endpoint is not connected\n" % p
                          for p in dead)
            return (1 if dead else 0), out, err
        if cmd == 'mount':
            opts, tag, path = argv[4], argv[5], argv[6]
            if self.fail_mount:
                return 255, '', 'mount: mounting %s on %s failed: %s\n' % (tag, path, self.fail_mount)
            if tag not in devices:
                return 255, '', 'mount: mounting %s on %s failed: Invalid argument\n' % (tag, path)
            self.next_mount_id += 1
            mount = (tag, path, 'virtiofs', opts, self.next_mount_id)
            self.mounts.append(mount)
            self.files['/sys/class/bdi/%s/read_ahead_kb' % self.mount_dev(mount)] = '128\n'
            return 0, '', ''
        if cmd == 'umount':
            path = argv[-1]
            lazy = '-l' in argv
            if path in self.busy and not lazy:
                return 1, '', 'umount: can\'t unmount %s: Device or resource busy\n' % path
            for index in range(len(self.mounts) - 1, -1, -1):
                if self.mounts[index][1] == path:
                    self.files.pop('/sys/class/bdi/%s/read_ahead_kb' % self.mount_dev(self.mounts[index]), None)
                    del self.mounts[index]
                    return 0, '', ''
            return 1, '', 'umount: can\'t unmount %s: Invalid argument\n' % path
        raise AssertionError('unexpected guest command %r' % (argv,))


class FakeDomain:
    """Implements the methods of ``_libvirt.Domain`` on plain data."""

    def __init__(self, name='vm1', uuid='11111111-2222-3333-4444-555555555555', active=True, persistent=True,
                 shared_memory=True):
        self.name = name
        self.uuid = uuid
        self.active = active
        self.persistent = persistent
        self.shared_memory = shared_memory
        self.live = []      # list of (tag, source)
        self.config = []
        self.meta = {'live': None, 'config': None}
        self.guest = FakeGuest()
        self.dead_backends = set()
        self.backends = {}      # tag -> the "virtiofsd" of its live device: a new one for each attach
        self.fail_metadata = 0  # how many metadata writes fail from now on
        self.calls = []
        self._pids = {}
        self._files = {}

    # state
    def is_active(self):
        return self.active

    def is_persistent(self):
        return self.persistent

    def xml(self, config=False):
        if not config and not self.active:
            raise AssertionError('live XML of a stopped domain')
        root = ET.Element('domain', {'type': 'qemu'})
        ET.SubElement(root, 'name').text = self.name
        if self.shared_memory:
            mb = ET.SubElement(root, 'memoryBacking')
            ET.SubElement(mb, 'access', {'mode': 'shared'})
        devices = ET.SubElement(root, 'devices')
        for index, (tag, source) in enumerate(self.config if config else self.live):
            fs = ET.SubElement(devices, 'filesystem', {'type': 'mount'})
            ET.SubElement(fs, 'driver', {'type': 'virtiofs'})
            ET.SubElement(fs, 'source', {'dir': source})
            ET.SubElement(fs, 'target', {'dir': tag})
            if not config:
                ET.SubElement(fs, 'alias', {'name': 'fs%d' % index})
        return ET.tostring(root, encoding='unicode')

    # devices
    @staticmethod
    def _parse(device_xml):
        fs = _libvirt.filesystems('<domain><devices>%s</devices></domain>' % device_xml)[0]
        return fs['tag'], fs['source']

    def attach(self, device_xml, live, config):
        self.calls.append(('attach', live, config))
        tag, source = self._parse(device_xml)
        if live and not self.active:
            raise _libvirt.VirtError('Requested operation is not valid: domain is not running', 55)
        if config and any(t == tag for t, _s in self.config):
            raise _libvirt.VirtError('Requested operation is not valid: Target already exists', 55)
        if live:
            self.live.append((tag, source))   # no duplicate check, like libvirt 9.0 on a live attach
            self.backends[tag] = '%d.%d' % (4000 + len(self.calls), 7)
        if config:
            self.config.append((tag, source))

    def detach(self, device_xml, live, config):
        self.calls.append(('detach', live, config))
        tag, _source = self._parse(device_xml)
        for flag, devices in ((live, self.live), (config, self.config)):
            if not flag:
                continue
            for index, (t, _s) in enumerate(devices):
                if t == tag:
                    del devices[index]
                    break
            else:
                raise _libvirt.VirtError('device not found: no matching filesystem device was found', 99)

    def backend_alive(self, alias):
        for index, (tag, _source) in enumerate(self.live):
            if 'fs%d' % index == alias:
                return tag not in self.dead_backends
        return None

    def backend_identity(self, alias):
        for index, (tag, _source) in enumerate(self.live):
            if 'fs%d' % index == alias and tag not in self.dead_backends:
                return self.backends.get(tag)
        return None

    # metadata
    def get_metadata(self, config=False):
        return self.meta['config' if config else 'live']

    def set_metadata(self, xml_text, live, config):
        self.calls.append(('metadata', live, config))
        if self.fail_metadata:
            self.fail_metadata -= 1
            raise _libvirt.VirtError('cannot write the metadata of VM %s: internal error: injected' % self.name, 1)
        if live:
            self.meta['live'] = xml_text
        if config:
            self.meta['config'] = xml_text

    def records(self, config=False):
        return _record.parse(self.get_metadata(config))

    # guest agent
    def agent_command(self, command_json, timeout):
        if not self.active or not self.guest.reachable:
            raise _libvirt.VirtError('Guest agent is not responding: QEMU guest agent is not connected', 86)
        request = json.loads(command_json)
        name, args = request['execute'], request.get('arguments', {})
        if name == 'guest-ping':
            result = {}
        elif name == 'guest-exec':
            stdin = base64.b64decode(args['input-data']) if 'input-data' in args else None
            rc, out, err = self.guest.execute([args['path']] + args.get('arg', []), [t for t, _s in self.live], stdin)
            pid = len(self._pids) + 100
            self._pids[pid] = {'exited': True, 'exitcode': rc,
                               'out-data': base64.b64encode(out.encode()).decode(),
                               'err-data': base64.b64encode(err.encode()).decode()}
            result = {'pid': pid}
        elif name == 'guest-exec-status':
            result = self._pids[args['pid']]
        elif name == 'guest-file-open':
            if self.guest.no_file_ops:
                raise _libvirt.VirtError("internal error: unable to execute QEMU agent command 'guest-file-open': "
                                         "The command guest-file-open has been disabled for this instance", 1)
            handle = len(self._files) + 1
            if args.get('mode', 'r').startswith('r'):
                if args['path'] == '/proc/self/mountinfo':
                    data = self.guest.proc_mounts()
                elif args['path'] in self.guest.files:
                    data = self.guest.files[args['path']]
                else:
                    raise _libvirt.VirtError("internal error: unable to execute QEMU agent command 'guest-file-open': "
                                             "failed to open file '%s' (mode: 'r'): No such file or directory"
                                             % args['path'], 1)
                self._files[handle] = [None, data.encode()]
            else:
                self._files[handle] = [args['path'], b'']
            result = handle
        elif name == 'guest-file-read':
            data = self._files[args['handle']][1]
            count = args.get('count', 4096)
            chunk, self._files[args['handle']][1] = data[:count], data[count:]
            result = {'count': len(chunk), 'buf-b64': base64.b64encode(chunk).decode(),
                      'eof': not self._files[args['handle']][1]}
        elif name == 'guest-file-write':
            self._files[args['handle']][1] += base64.b64decode(args['buf-b64'])
            result = {'count': 0}
        elif name == 'guest-file-close':
            path, data = self._files.pop(args['handle'])
            if path is not None:
                self.guest.files[path] = data.decode()
            result = {}
        else:
            raise AssertionError('unexpected agent command %s' % name)
        return json.dumps({'return': result})


class FakeConnection:
    def __init__(self, *domains):
        self.domains_by_name = dict((d.name, d) for d in domains)
        self.uri = 'qemu:///system'

    def lookup(self, vm):
        for dom in self.domains_by_name.values():
            if vm in (dom.name, dom.uuid):
                return dom
        return None

    def domains(self):
        return list(self.domains_by_name.values())

    def close(self):
        pass


def mounted_domain():
    """A fake VM with model m recorded, attached live and persistent, mounted in the guest and in its fstab."""
    dom = FakeDomain()
    rec = {'model': 'm', 'volume': 'v', 'source_path': 'models/m', 'mount_path': '/mnt/m', 'tag': 'aim-m-1',
           'read_only': True, 'persist': True, 'guest_mount': True, 'cache': 'auto'}
    dom.meta['live'] = dom.meta['config'] = _record.render({'m': rec})
    dom.live = [('aim-m-1', '/src')]
    dom.config = [('aim-m-1', '/src')]
    dom.guest.mounts.append(('aim-m-1', '/mnt/m', 'virtiofs', 'ro'))
    dom.guest.files['/etc/fstab'] += 'aim-m-1 /mnt/m virtiofs ro,nofail 0 0\n'
    return dom
