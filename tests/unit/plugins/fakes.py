# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A fake libvirt domain and guest, at the one boundary the collection has (``_libvirt.Domain``).

It behaves like the real thing where the lab showed it: libvirt does not refuse a duplicate tag on a live
attach, refuses it on a config attach, and a guest mounts a tag only once the device is attached. The guest
mounts a device once at its base and binds a model from there: the bind shows the base's source, file
system and device number, and the directory below the base as its root. A mount reads through the device
(and its virtiofsd) it was made on: once that device is detached or attached anew, the mount and every bind
made from it are dead. With a host (``FakeDomain.host``), a bind finds only the entries pinned into the
device's export directory.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import base64
import json
import xml.etree.ElementTree as ET

from ansible_collections.aimodel.kvm.plugins.module_utils import _export
from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _mountinfo
from ansible_collections.aimodel.kvm.plugins.module_utils import _record
from ansible_collections.aimodel.kvm.plugins.module_utils import _tuning

UUID = '11111111-2222-3333-4444-555555555555'
# What the fake metadata engines report, and what the fake host mounts are, unless a test says otherwise.
FAKE_IDENTITY = ('labvol', '0b1e4c2a-5d1f-4e2b-9a5e-3f1c2d3e4f50')
READ_AHEAD = '/sys/class/bdi/%s/read_ahead_kb'
NOT_CONNECTED = 'Transport endpoint is not connected'
# What the fake agent offers (guest-info), and what it still answers while the guest's file systems are frozen.
AGENT_COMMANDS = ('guest-ping', 'guest-info', 'guest-exec', 'guest-exec-status', 'guest-file-open', 'guest-file-read',
                  'guest-file-write', 'guest-file-close', 'guest-get-fsinfo', 'guest-fsfreeze-status',
                  'guest-fsfreeze-freeze', 'guest-fsfreeze-thaw')
FROZEN_ALLOWED = ('guest-ping', 'guest-info', 'guest-sync', 'guest-sync-delimited', 'guest-fsfreeze-status',
                  'guest-fsfreeze-thaw')
# Ports of a q35 fake VM that its own devices (disk, virtio-serial) take.
BUSY_PORTS = 2
# The commands a RHEL 8 guest's /etc/sysconfig/qemu-ga blocks (BLACKLIST_RPC).
RHEL8_BLOCKED = ('guest-file-open', 'guest-file-close', 'guest-file-read', 'guest-file-write', 'guest-file-seek',
                 'guest-file-flush', 'guest-exec', 'guest-exec-status')


class FakeGuest:
    """The guest behind the agent: mount table, files, directories, and the commands the collection runs."""

    def __init__(self):
        self.domain = None          # the FakeDomain: its live devices and their virtiofsd
        self.mounts = []
        self.files = {'/etc/fstab': '# static\n/dev/vda /persist ext4 rw 0 0\n'}
        self.busy = set()
        self.dirs = set(['/mnt', '/persist', '/etc'])
        self.stale = set()          # paths whose statfs fails, whatever they read through
        self.fail_mount = None      # the error of every virtiofs mount and bind from now on
        self.reachable = True
        # An agent that refuses the guest-file-* commands without saying so in guest-info.
        self.no_file_ops = False
        # Commands the agent has disabled (--block-rpcs) and lists so in guest-info; ``frozen``: the guest's file
        # systems are frozen, and the agent refuses all but FROZEN_ALLOWED.
        self.disabled = set()
        self.frozen = False
        # The kernel's /proc/filesystems has virtiofs; without it, a virtiofs mount fails with ENODEV.
        self.kernel_virtiofs = True
        self.read_only_files = set()
        self.next_mount_id = 200
        self.argvs = []
        self.add_mount('proc', '/proc', 'proc', 'rw')
        self.add_mount('/dev/vda', '/persist', 'ext4', 'rw')

    # --- the mount table ---------------------------------------------------------------------------
    def add_mount(self, source, target, fstype, options, root='/', dev=None, instance=None):
        """A mount as the kernel lists it; ``instance``: the virtiofsd it reads through (virtiofs only)."""
        self.next_mount_id += 1
        mount = {'id': self.next_mount_id, 'dev': dev or '0:%d' % (self.next_mount_id % 1000), 'root': root,
                 'source': source, 'target': target, 'fstype': fstype, 'options': options, 'instance': instance}
        self.mounts.append(mount)
        return mount

    def visible(self, target):
        found = [m for m in self.mounts if m['target'] == target]
        return found[-1] if found else None

    def holding(self, path):
        """The visible mount that holds this path (the one with the longest target above it)."""
        best = None
        for mount in self.mounts:
            top = mount['target'].rstrip('/')
            if path == mount['target'] or path.startswith(top + '/'):
                if best is None or len(mount['target']) >= len(best['target']):
                    best = mount
        return best

    def _device_instance(self, tag):
        """The virtiofsd that the live device with this tag has now, or None (no such device, or it is dead)."""
        dom = self.domain
        if dom is None or tag in dom.dead_backends or not any(t == tag for t, _s in dom.live):
            return None
        return dom.backends.get(tag)

    def answers(self, path):
        mount = self.holding(path)
        if path in self.stale or mount is None:
            return path not in self.stale
        if mount['fstype'] != _guest.FSTYPE:
            return True
        return mount['instance'] is not None and mount['instance'] == self._device_instance(mount['source'])

    def model_mounts(self):
        """(target, root, options) of the binds of models, in mount order."""
        return [(m['target'], m['root'], m['options']) for m in self.mounts
                if m['fstype'] == _guest.FSTYPE and m['root'] != '/']

    def virtiofs_mounts(self):
        return [m for m in self.mounts if m['fstype'] == _guest.FSTYPE]

    def proc_filesystems(self):
        return 'nodev\tproc\n\text4\n' + ('nodev\tvirtiofs\n' if self.kernel_virtiofs else '')

    def read_ahead(self, dev):
        return self.files.get(READ_AHEAD % dev)

    def proc_mounts(self):
        """/proc/self/mountinfo of the fake guest."""
        return ''.join('%d 1 %s %s %s %s shared:%d - %s %s rw\n'
                       % (m['id'], m['dev'], _mountinfo.escape(m['root']), _mountinfo.escape(m['target']), m['options'],
                          m['id'], m['fstype'], _mountinfo.escape(m['source'])) for m in self.mounts)

    # --- commands ----------------------------------------------------------------------------------
    def execute(self, argv, stdin=None):
        self.argvs.append(list(argv))
        cmd = argv[0]
        if cmd == 'sh' and argv[1:3] == ['-c', _guest.WRITE_VALUE_SCRIPT] and len(argv) == 6:
            self.files[argv[5]] = argv[4] + '\n'
            return 0, '', ''
        if cmd == 'sh' and argv[1:3] == ['-c', _tuning.INSTALL_UNIT_SCRIPT] and len(argv) == 6:
            # The unit, and the link to it (kept as a copy: the module writes both at once).
            self.files[argv[4]] = self.files[argv[5]] = (stdin or b'').decode()
            return 0, '', ''
        if cmd == 'sh' and argv[1:3] == ['-c', _tuning.REMOVE_UNIT_SCRIPT] and len(argv) == 6:
            self.files.pop(argv[4], None)
            self.files.pop(argv[5], None)
            return 0, '', ''
        if cmd == 'sh':
            if argv[1:3] != ['-c', _guest.REPLACE_FILE_SCRIPT] or len(argv) != 5:
                raise AssertionError('unexpected guest shell %r' % (argv,))
            path = argv[4]
            if path in self.read_only_files:
                return 1, '', "sh: can't create %s: Read-only file system\n" % path
            self.files[path] = (stdin or b'').decode()
            return 0, '', ''
        if cmd in ('cat', 'head'):
            path, limit = (argv[1], None) if cmd == 'cat' else (argv[3], int(argv[2]))
            if path == '/proc/self/mountinfo':
                return 0, self.proc_mounts()[:limit], ''
            if path == '/proc/filesystems':
                return 0, self.proc_filesystems()[:limit], ''
            if path in self.files:
                return 0, self.files[path][:limit], ''
            return 1, '', '%s: can\'t open \'%s\': No such file or directory\n' % (cmd, path)
        if cmd == 'mkdir':
            return self._mkdir(argv[-1])
        if cmd == 'rmdir':
            for path in argv[1:]:
                self.dirs.discard(path)
            return 0, '', ''
        if cmd == 'stat':
            paths = argv[4:]
            dead = [p for p in paths if not self.answers(p)]
            out = ''.join(p + '\n' for p in paths if p not in dead)
            err = ''.join("stat: can't read file system information for '%s': %s\n" % (p, NOT_CONNECTED) for p in dead)
            return (1 if dead else 0), out, err
        if cmd == 'mount' and argv[1:2] == ['-t']:
            return self._mount_virtiofs(argv)
        if cmd == 'mount' and argv[1:2] == ['-o'] and argv[2].startswith('bind,'):
            return self._bind(argv)
        if cmd == 'umount':
            return self._umount(argv[-1], '-l' in argv)
        raise AssertionError('unexpected guest command %r' % (argv,))

    def _mkdir(self, path):
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

    def _mount_virtiofs(self, argv):
        if argv[2] != _guest.FSTYPE or argv[3] != '-o' or len(argv) != 7:
            raise AssertionError('unexpected guest mount %r' % (argv,))
        opts, tag, path = argv[4], argv[5], argv[6]
        if self.fail_mount:
            return 255, '', 'mount: mounting %s on %s failed: %s\n' % (tag, path, self.fail_mount)
        if not self.kernel_virtiofs:
            return 255, '', 'mount: mounting %s on %s failed: No such device\n' % (tag, path)
        instance = self._device_instance(tag)
        if instance is None:
            return 255, '', 'mount: mounting %s on %s failed: Invalid argument\n' % (tag, path)
        mount = self.add_mount(tag, path, _guest.FSTYPE, opts, instance=instance)
        self.files[READ_AHEAD % mount['dev']] = '128\n'
        return 0, '', ''

    def _bind(self, argv):
        if len(argv) != 5:
            raise AssertionError('unexpected guest bind %r' % (argv,))
        opts, source, path = argv[2][len('bind,'):], argv[3], argv[4]
        if self.fail_mount:
            return 255, '', 'mount: mounting %s on %s failed: %s\n' % (source, path, self.fail_mount)
        if path not in self.dirs:
            return 255, '', 'mount: mounting %s on %s failed: No such file or directory\n' % (source, path)
        base = self.holding(source)
        if base is None or base['target'] == source:
            raise AssertionError('the fake binds only directories below a mount: %r' % (argv,))
        if base['fstype'] == _guest.FSTYPE and not self.answers(base['target']):
            return 255, '', 'mount: mounting %s on %s failed: %s\n' % (source, path, NOT_CONNECTED)
        below = source[len(base['target'].rstrip('/')):]
        if base['fstype'] == _guest.FSTYPE and self.domain is not None and self.domain.host is not None:
            view = [s for t, s in self.domain.live if t == base['source']][-1]
            if below.strip('/') not in self.domain.host.entries_in(view):
                return 255, '', 'mount: mounting %s on %s failed: No such file or directory\n' % (source, path)
        self.add_mount(base['source'], path, base['fstype'], opts, root=base['root'].rstrip('/') + below,
                       dev=base['dev'], instance=base['instance'])
        return 0, '', ''

    def _umount(self, path, lazy):
        if path in self.busy and not lazy:
            return 1, '', 'umount: can\'t unmount %s: Device or resource busy\n' % path
        mount = self.visible(path)
        if mount is None:
            return 1, '', 'umount: can\'t unmount %s: Invalid argument\n' % path
        self.mounts.remove(mount)
        self.stale.discard(path)
        if not [m for m in self.mounts if m['dev'] == mount['dev']]:
            # The file system's last mount is gone, and its readahead setting with it.
            self.files.pop(READ_AHEAD % mount['dev'], None)
        return 0, '', ''


class FakeDomain:
    """Implements the methods of ``_libvirt.Domain`` on plain data."""

    def __init__(self, name='vm1', uuid=UUID, active=True, persistent=True, shared_memory=True, root_ports=None):
        self.name = name
        # pc (None: the root bus, slots 2-31, the VM's own devices in slots 2 and 3) or q35 with this many
        # pcie-root-ports, the first BUSY_PORTS of them taken by the VM's own devices.
        self.root_ports = root_ports
        self.uuid = uuid
        self.active = active
        self.persistent = persistent
        self.shared_memory = shared_memory
        self.live = []      # list of (tag, source)
        self.config = []
        self.meta = {'live': None, 'config': None}
        self.guest = FakeGuest()
        self.guest.domain = self
        self.host = None        # a FakeHost: what the export directories hold
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
        self._controllers(devices)
        for index, (tag, source) in enumerate(self.config if config else self.live):
            fs = ET.SubElement(devices, 'filesystem', {'type': 'mount'})
            ET.SubElement(fs, 'driver', {'type': 'virtiofs'})
            ET.SubElement(fs, 'source', {'dir': source})
            ET.SubElement(fs, 'target', {'dir': tag})
            if not config:
                ET.SubElement(fs, 'alias', {'name': 'fs%d' % index})
                bus, slot = (0, 4 + index) if self.root_ports is None else (BUSY_PORTS + 1 + index, 0)
                ET.SubElement(fs, 'address', {'type': 'pci', 'domain': '0x0000', 'bus': '0x%02x' % bus,
                                              'slot': '0x%02x' % slot, 'function': '0x0'})
        return ET.tostring(root, encoding='unicode')

    def _controllers(self, devices):
        """The PCI controllers and the VM's own devices (a disk and the agent's virtio-serial) on them."""
        def address(parent, bus, slot, function=0):
            ET.SubElement(parent, 'address', {'type': 'pci', 'domain': '0x0000', 'bus': '0x%02x' % bus,
                                              'slot': '0x%02x' % slot, 'function': '0x%x' % function})
        if self.root_ports is None:
            ET.SubElement(devices, 'controller', {'type': 'pci', 'index': '0', 'model': 'pci-root'})
            own = [(0, 2), (0, 3)]
        else:
            ET.SubElement(devices, 'controller', {'type': 'pci', 'index': '0', 'model': 'pcie-root'})
            for index in range(1, self.root_ports + 1):
                port = ET.SubElement(devices, 'controller', {'type': 'pci', 'index': str(index), 'model': 'pcie-root-port'})
                address(port, 0, 1, index - 1)
            own = [(index, 0) for index in range(1, min(BUSY_PORTS, self.root_ports) + 1)]
        for bus, slot in own:
            address(ET.SubElement(devices, 'disk', {'type': 'file', 'device': 'disk'}), bus, slot)

    def free_ports(self):
        return None if self.root_ports is None else self.root_ports - BUSY_PORTS - len(self.live)

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
        if live and self.free_ports() is not None and self.free_ports() <= 0:
            raise _libvirt.VirtError('internal error: No more available PCI slots', 1)
        if live:
            self.live.append((tag, source))   # no duplicate check, like libvirt 9.0 on a live attach
            self.backends[tag] = '%d.%d' % (4000 + len(self.calls), 7)
            self.dead_backends.discard(tag)
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
        if not self._enabled(name):
            if self.guest.frozen:
                raise _libvirt.VirtError("internal error: unable to execute QEMU agent command '%s': Command %s has "
                                         "been disabled: the agent is in frozen state" % (name, name), 1)
            raise _libvirt.VirtError("internal error: unable to execute QEMU agent command '%s': Command %s has "
                                     "been disabled" % (name, name), 1)
        if name == 'guest-ping':
            result = {}
        elif name == 'guest-info':
            result = {'version': '7.2.22', 'supported_commands': [
                {'name': n, 'enabled': self._enabled(n), 'success-response': True} for n in AGENT_COMMANDS]}
        elif name == 'guest-fsfreeze-status':
            result = 'frozen' if self.guest.frozen else 'thawed'
        elif name == 'guest-exec':
            stdin = base64.b64decode(args['input-data']) if 'input-data' in args else None
            rc, out, err = self.guest.execute([args['path']] + args.get('arg', []), stdin)
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
                elif args['path'] == '/proc/filesystems':
                    data = self.guest.proc_filesystems()
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

    def _enabled(self, name):
        return name not in self.guest.disabled and (not self.guest.frozen or name in FROZEN_ALLOWED)


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

    def versions(self):
        """This lab's stack: libvirt 9.0.0, QEMU 7.2.15."""
        return 9000000, 7002015

    def close(self):
        pass


def guest_run(dom, argv):
    """Run a command in the fake guest as the guest itself would (a boot, an admin); fails the test on an error."""
    rc, out, err = dom.guest.execute(argv)
    if rc != 0:
        raise AssertionError('%r failed in the fake guest: %s' % (argv, err or out))
    return out


RECORD = {'model': 'm', 'volume': 'v', 'source_path': 'models/m', 'mount_path': '/mnt/m', 'tag': 'aim-m-1',
          'device': 'aimodel-ro', 'read_only': True, 'persist': True, 'guest_mount': True, 'cache': 'auto',
          'read_ahead_kb': 1024, 'mount_root': '/var/lib/aimodel/volumes'}


def mounted_domain():
    """A fake VM with model m recorded on the shared read-only device (live and persistent), the device's base
    mount (readahead 1024 KiB) and the model's bind in the guest, and both in its fstab."""
    dom = FakeDomain()
    view = _export.view_dir(dom.uuid, 'ro')
    dom.meta['live'] = dom.meta['config'] = _record.render({'m': dict(RECORD)})
    dom.attach(_libvirt.filesystem_xml(view, 'aimodel-ro'), True, True)
    guest_run(dom, ['mkdir', '-p', '/run/aimodel/ro'])
    guest_run(dom, ['mount', '-t', 'virtiofs', '-o', 'ro,nosuid,nodev', 'aimodel-ro', '/run/aimodel/ro'])
    dom.guest.files[READ_AHEAD % dom.guest.visible('/run/aimodel/ro')['dev']] = '1024\n'
    guest_run(dom, ['mkdir', '-p', '/mnt/m'])
    guest_run(dom, ['mount', '-o', 'bind,ro,nosuid,nodev', '/run/aimodel/ro/aim-m-1', '/mnt/m'])
    dom.guest.files['/etc/fstab'] += (_guest.fstab_base_line('aimodel-ro', '/run/aimodel/ro', True) + '\n'
                                      + _guest.fstab_bind_line('/run/aimodel/ro/aim-m-1', '/mnt/m', '/run/aimodel/ro',
                                                               True) + '\n')
    dom.calls = []
    dom.guest.argvs = []
    return dom


def legacy_domain():
    """A fake VM with model m recorded the earlier way: no ``device`` in the record, a virtiofs device of its
    own tagged with the record's tag, mounted in the guest at mount_path, and its old fstab line."""
    dom = FakeDomain()
    rec = dict(RECORD)
    del rec['device'], rec['mount_root']
    dom.meta['live'] = dom.meta['config'] = _record.render({'m': rec})
    dom.attach(_libvirt.filesystem_xml('/src', 'aim-m-1'), True, True)
    guest_run(dom, ['mkdir', '-p', '/mnt/m'])
    guest_run(dom, ['mount', '-t', 'virtiofs', '-o', 'ro', 'aim-m-1', '/mnt/m'])
    dom.guest.files[READ_AHEAD % dom.guest.visible('/mnt/m')['dev']] = '1024\n'
    dom.guest.files['/etc/fstab'] += 'aim-m-1 /mnt/m virtiofs ro,nofail 0 0\n'
    dom.calls = []
    dom.guest.argvs = []
    return dom


class FakeTree:
    """The host's file system as ``_hostpath`` sees it: ``lstat`` and ``readlink`` over a dict of paths, each a
    directory, a file or a symbolic link with an owner and a mode. Only ``/`` exists at first (root's, 0755)."""

    def __init__(self):
        self.nodes = {'/': ('dir', 0, 0o755, None)}

    def add(self, path, kind='dir', uid=0, mode=0o755, target=None):
        self.nodes[path] = (kind, uid, mode, target)
        return self

    def lstat(self, path):
        import errno
        import os
        import stat
        if path not in self.nodes:
            parent = os.path.dirname(path)
            if parent in self.nodes and self.nodes[parent][0] == 'file':
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        kind, uid, mode, _target = self.nodes[path]
        kinds = {'dir': stat.S_IFDIR, 'file': stat.S_IFREG, 'link': stat.S_IFLNK}
        return os.stat_result((kinds[kind] | mode, 1, 1, 1, uid, 0, 0, 0, 0, 0))

    def readlink(self, path):
        return self.nodes[path][3]


class GuestClock:
    """The clock of ``_guest`` (put in place of its ``time`` module): a sleep passes at once, and a slow guest
    (``slow_guest``) moves it on by the time it takes to answer."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def slow_guest(dom, clock, delay, after=0):
    """From the agent call after the first ``after`` on, the guest of ``dom`` takes ``delay`` seconds of ``clock``
    to answer each call; a call whose timeout is shorter times out as libvirt's does. Returns the timeouts the
    calls were given, in order."""
    real = dom.agent_command
    timeouts = []

    def agent_command(command_json, timeout):
        timeouts.append(timeout)
        if len(timeouts) > after:
            if delay >= timeout:
                clock.now += timeout
                raise _libvirt.VirtError('Guest agent is not responding: Guest agent not available for now', 86)
            clock.now += delay
        return real(command_json, timeout)
    dom.agent_command = agent_command
    return timeouts
