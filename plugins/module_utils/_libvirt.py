# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""libvirt: connection, domain lookup, virtiofs device XML, LIVE|CONFIG changes, metadata.

``Domain`` is the one boundary between the collection and libvirt: unit tests replace it with a fake.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import glob
import os
import re
import time
import traceback
import xml.etree.ElementTree as ET

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.aimodel.kvm.plugins.module_utils._errors import AimodelError
from ansible_collections.aimodel.kvm.plugins.module_utils._record import KEY, NAMESPACE
from ansible_collections.aimodel.kvm.plugins.module_utils._spec import validate_uri

LIBVIRT_IMPORT_ERROR = None
try:
    import libvirt
    import libvirt_qemu
except ImportError:
    LIBVIRT_IMPORT_ERROR = traceback.format_exc()
    libvirt = None
    libvirt_qemu = None

HAS_LIBVIRT = LIBVIRT_IMPORT_ERROR is None

# The role that installs the binding for the Python the modules run under (the playbook aimodel.kvm.prepare_hosts
# runs it on the hypervisors).
BINDING_ROLE = 'aimodel.kvm.hypervisor'
BINDING_PLAYBOOK = 'aimodel.kvm.prepare_hosts'


def missing_binding_msg():
    """The modules' error when the libvirt binding cannot be imported: how this collection installs it, then Ansible's
    usual message (the host, its Python)."""
    return ('The libvirt Python binding (libvirt-python) is missing: the role %s installs it for the Python the modules '
            'run under (ansible-playbook -i INVENTORY %s runs that role on the hypervisors). %s'
            % (BINDING_ROLE, BINDING_PLAYBOOK, missing_required_lib('libvirt-python', reason='to talk to libvirt')))


def uri_option():
    """The argument spec of the connection option both modules share (documented in the connection fragment)."""
    return dict(type='str', default='qemu:///system', fallback=(env_fallback, ['LIBVIRT_DEFAULT_URI']))


_UUID_RE = re.compile(r'^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$')

# libvirt error codes used here (stable numbers from virterror.h).
ERR_NO_DOMAIN = 42
ERR_NO_DOMAIN_METADATA = 80


class VirtError(AimodelError):
    """A libvirt failure, with libvirt's own message and code."""

    def __init__(self, message, code=None):
        super(VirtError, self).__init__(message)
        self.code = code


def _code(exc):
    try:
        return exc.get_error_code()
    except Exception:  # pylint: disable=broad-except
        return None


def _wrap(what, exc):
    return VirtError('%s: %s' % (what, exc), _code(exc))


def connect(uri):
    """Open one connection for the whole module run, to the local hypervisor only (``_spec.validate_uri``: the
    modules check it with their other options first; checked here again for any other caller)."""
    validate_uri(uri)
    if not HAS_LIBVIRT:
        raise VirtError('the libvirt Python binding is not installed')
    # libvirt-python prints every error to stderr unless a handler is set.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        return Connection(libvirt.open(uri))
    except libvirt.libvirtError as exc:
        raise _wrap('cannot connect to libvirt at %s' % uri, exc)


class Connection:
    def __init__(self, conn):
        self._conn = conn

    def lookup(self, vm):
        """The domain with this name or UUID, or None when this host has no such domain."""
        try:
            if _UUID_RE.match(vm):
                try:
                    return Domain(self._conn.lookupByUUIDString(vm))
                except libvirt.libvirtError as exc:
                    if _code(exc) != ERR_NO_DOMAIN:
                        raise
            return Domain(self._conn.lookupByName(vm))
        except libvirt.libvirtError as exc:
            if _code(exc) == ERR_NO_DOMAIN:
                return None
            raise _wrap('cannot look up VM %s' % vm, exc)

    def versions(self):
        """(libvirt's version, the hypervisor's (QEMU's) version), as libvirt's integers (major * 1000000 + ...)."""
        try:
            return self._conn.getLibVersion(), self._conn.getVersion()
        except libvirt.libvirtError as exc:
            raise _wrap('cannot read the versions of libvirt and QEMU', exc)

    def domains(self):
        try:
            return [Domain(dom) for dom in self._conn.listAllDomains(0)]
        except libvirt.libvirtError as exc:
            raise _wrap('cannot list VMs', exc)

    def close(self):
        try:
            self._conn.close()
        except Exception:  # pylint: disable=broad-except
            pass


class Domain:
    """The thin boundary around one libvirt domain."""

    def __init__(self, dom):
        self._dom = dom
        self.name = dom.name()
        self.uuid = dom.UUIDString()

    def is_active(self):
        return bool(self._call('read the state of', self._dom.isActive))

    def is_persistent(self):
        return bool(self._call('read the state of', self._dom.isPersistent))

    def xml(self, config=False):
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE if config else 0
        return self._call('read the XML of', self._dom.XMLDesc, flags)

    def attach(self, device_xml, live, config):
        self._call('attach a device to', self._dom.attachDeviceFlags, device_xml, _flags(live, config))

    def detach(self, device_xml, live, config):
        self._call('detach a device from', self._dom.detachDeviceFlags, device_xml, _flags(live, config))

    def get_metadata(self, config=False):
        """The XML of our metadata element, or None."""
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG if config else libvirt.VIR_DOMAIN_AFFECT_LIVE
        try:
            return self._dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, NAMESPACE, flags)
        except libvirt.libvirtError as exc:
            if _code(exc) == ERR_NO_DOMAIN_METADATA:
                return None
            raise _wrap('cannot read the metadata of VM %s' % self.name, exc)

    def set_metadata(self, xml_text, live, config):
        """Write our metadata element (``None`` removes it)."""
        self._call('write the metadata of', self._dom.setMetadata, libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                   xml_text, KEY if xml_text is not None else None, NAMESPACE, _flags(live, config))

    def _backend_pidfile(self, alias, run_dir):
        """The file where libvirt keeps the PID of the virtiofsd of the device with this alias, or None."""
        if not alias:
            return None
        try:
            dom_id = self._dom.ID()
        except libvirt.libvirtError:
            return None
        pidfiles = glob.glob(os.path.join(run_dir, '%d-*-%s-fs.pid' % (dom_id, alias)))
        return pidfiles[0] if len(pidfiles) == 1 else None

    def _backend(self, alias, run_dir):
        """The virtiofsd of the device with this alias: None when libvirt keeps no (single) pid file for it,
        else its PID, or 0 when the pid file or the process is gone or is not a virtiofsd."""
        pidfile = self._backend_pidfile(alias, run_dir)
        if pidfile is None:
            return None
        try:
            with open(pidfile) as handle:
                pid = int(handle.read().strip())
            with open('/proc/%d/cmdline' % pid, 'rb') as handle:
                return pid if b'virtiofsd' in handle.read() else 0
        except (IOError, OSError, ValueError):
            return 0

    def backend_alive(self, alias, run_dir='/run/libvirt/qemu'):
        """Whether the virtiofsd that libvirt started for the device with this alias still runs: True, False,
        or None when it cannot be told (another libvirt layout, a session URI, no alias).

        Checked on the host, never through the guest: a guest process that touches a virtiofs mount whose
        virtiofsd died hangs for good, and holds the device so that it cannot be detached.
        """
        pid = self._backend(alias, run_dir)
        return None if pid is None else pid != 0

    def backend_identity(self, alias, run_dir='/run/libvirt/qemu'):
        """``PID.START`` of the running virtiofsd of the device with this alias (its start time in clock
        ticks since boot, so a reused PID does not match), or None when it cannot be told."""
        pid = self._backend(alias, run_dir)
        if not pid:
            return None
        try:
            with open('/proc/%d/stat' % pid) as handle:
                stat = handle.read()
        except (IOError, OSError):
            return None
        # Field 22 (starttime), counted after the command name, which is in parentheses and may hold spaces.
        fields = stat.rsplit(')', 1)[-1].split()
        return '%d.%s' % (pid, fields[19]) if len(fields) > 19 else None

    def agent_command(self, command_json, timeout):
        try:
            return libvirt_qemu.qemuAgentCommand(self._dom, command_json, timeout, 0)
        except libvirt.libvirtError as exc:
            raise _wrap('guest agent of VM %s' % self.name, exc)

    def _call(self, what, func, *args):
        try:
            return func(*args)
        except libvirt.libvirtError as exc:
            raise _wrap('cannot %s VM %s' % (what, self.name), exc)


def _flags(live, config):
    flags = 0
    if live:
        flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
    if config:
        flags |= libvirt.VIR_DOMAIN_AFFECT_CONFIG
    if not flags:
        raise ValueError('neither live nor config')
    return flags


# --- device XML -----------------------------------------------------------------------------------

def filesystems(domain_xml):
    """virtiofs <filesystem> devices of a domain XML: list of dicts (tag, source, alias, cache)."""
    devices = []
    root = ET.fromstring(domain_xml)
    for elem in root.findall('./devices/filesystem'):
        driver = elem.find('driver')
        if driver is None or driver.get('type') != 'virtiofs':
            continue
        source = elem.find('source')
        target = elem.find('target')
        alias = elem.find('alias')
        cache = elem.find('./binary/cache')
        devices.append({
            'tag': target.get('dir') if target is not None else None,
            'source': source.get('dir') if source is not None else None,
            'alias': alias.get('name') if alias is not None else None,
            'cache': cache.get('mode') if cache is not None else None,
        })
    return devices


def has_shared_memory(domain_xml):
    root = ET.fromstring(domain_xml)
    access = root.find('./memoryBacking/access')
    return access is not None and access.get('mode') == 'shared'


# virtiofsd's cache modes by our option value; 'auto' leaves virtiofsd's default.
CACHE_MODES = {'auto': None, 'always': 'always', 'never': 'none'}


def filesystem_xml(source_dir, tag, cache='auto'):
    """The <filesystem> device of one model. Read-only is enforced by the host volume and the guest
    mount: libvirt refuses <readonly/> for virtiofs."""
    fs = ET.Element('filesystem', {'type': 'mount', 'accessmode': 'passthrough'})
    ET.SubElement(fs, 'driver', {'type': 'virtiofs'})
    mode = CACHE_MODES.get(cache)
    if mode:
        binary = ET.SubElement(fs, 'binary')
        ET.SubElement(binary, 'cache', {'mode': mode})
    ET.SubElement(fs, 'source', {'dir': source_dir})
    ET.SubElement(fs, 'target', {'dir': tag})
    return ET.tostring(fs, encoding='unicode')


def wait_device_gone(domain, tag, timeout, interval=0.1):
    """Poll the live XML until no device with this tag is left; True when gone in time."""
    deadline = time.monotonic() + timeout
    while True:
        if not any(d['tag'] == tag for d in filesystems(domain.xml())):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# --- hot-plug slots -------------------------------------------------------------------------------
# Controllers whose bus takes one hot-plugged PCI Express device (q35): a port is free while no device sits on it.
_PCIE_PORTS = ('pcie-root-port', 'pcie-switch-downstream-port')
# Slots of a conventional PCI bus (pc: the root bus, and pci-bridges) that hot-plug can use: slot 0 is the host
# bridge on the root bus (the bridge itself on a pci-bridge), slot 1 of the root bus the PIIX3 of i440fx, which
# libvirt keeps and does not list.
_ROOT_BUS_SLOTS = range(2, 32)
_BRIDGE_SLOTS = range(1, 32)
SLOT_HINT = (
    "add a hot-plug slot to the VM: <controller type='pci' model='pcie-root-port'/> in its <devices> on q35 (one per "
    "device to hot-plug; a pci-bridge controller on pc) with virsh edit, and restart the VM (a shutdown and start, "
    "not a reboot: a running VM gets no new slots)")


def _int(text):
    try:
        return int(text, 0)
    except (TypeError, ValueError):
        return None


def free_hotplug_slots(domain_xml):
    """How many PCI devices more can be hot-plugged into the running VM of this live XML: on q35 (a pcie-root), the
    pcie-root-ports (and switch downstream ports) with no device on their bus and hot-plug not turned off; on pc (a
    pci-root), the free slots of the root bus and of its pci-bridges. None when the XML has neither (another
    machine type: it cannot be told)."""
    root = ET.fromstring(domain_xml)
    devices = root.find('devices')
    if devices is None:
        return None
    controllers = [c for c in devices.findall('controller') if c.get('type') == 'pci']
    models = dict((_int(c.get('index')), c.get('model')) for c in controllers)
    used = {}
    for address in devices.iter('address'):
        if address.get('type') == 'pci' and _int(address.get('domain') or '0') == 0:
            bus, slot = _int(address.get('bus')), _int(address.get('slot'))
            if bus is not None and slot is not None:
                used.setdefault(bus, set()).add(slot)
    if 'pcie-root' in models.values():
        return len([c for c in controllers if c.get('model') in _PCIE_PORTS and _int(c.get('index')) not in used
                    and (c.find('target') is None or c.find('target').get('hotplug') != 'off')])
    if 'pci-root' in models.values():
        free = len(set(_ROOT_BUS_SLOTS) - used.get(0, set()))
        for index, model in models.items():
            if model == 'pci-bridge':
                free += len(set(_BRIDGE_SLOTS) - used.get(index, set()))
        return free
    return None
