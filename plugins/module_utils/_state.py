# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The read model: the observed state of one VM, read once (records, live and persistent XML, guest mount
table and fstab), and of the host volumes, with the queries both modules ask of it.

Plans read it and never write into it: what a plan intends to change it keeps in its own context.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.aimodel.kvm.plugins.module_utils import _export
from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _juicefs
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _record
from ansible_collections.aimodel.kvm.plugins.module_utils._mountinfo import holding, shows, visible_at


class VmState:
    def __init__(self, domain, agent=None, read_guest=True):
        self.domain = domain
        self.agent = agent
        self.active = domain.is_active()
        self.persistent = domain.is_persistent()
        self.live_xml = domain.xml() if self.active else None
        self.config_xml = domain.xml(config=True) if self.persistent else None
        self.live_devices = _libvirt.filesystems(self.live_xml) if self.active else []
        self.config_devices = _libvirt.filesystems(self.config_xml) if self.persistent else []
        self.live_records = _record.parse(domain.get_metadata(config=False)) if self.active else {}
        self.config_records = _record.parse(domain.get_metadata(config=True)) if self.persistent else {}
        self.guest_mounts = None
        self.fstab = None
        self.guest_error = None
        self._reads = {}
        if self.active and read_guest and agent is not None:
            self.read_guest()

    def read_guest(self):
        try:
            # Which commands the agent allows, once (one round trip): a locked-down agent is told apart from one
            # that does not answer, and the reads below use what it allows.
            self.agent.commands()
            self.guest_mounts = self.agent.mounts()
            self.fstab = self.agent.read_file(_guest.FSTAB) or ''
            self.guest_error = None
        except _guest.GuestError as exc:
            self.guest_mounts = None
            self.fstab = None
            self.guest_error = exc

    def read_once(self, key, read):
        """What read() returns, read once for this read model: the guest reads a plan makes beyond the mount table
        and the fstab (a device's readahead, the guest's tuning), shared by the plans of a VM's set while nothing
        changed."""
        if key not in self._reads:
            self._reads[key] = read()
        return self._reads[key]

    @property
    def records(self):
        """The records that describe the VM as it is now: live when running, persistent when stopped; a detached
        record describes nothing the VM has (see ``detached_records``)."""
        return _record.attached(self.live_records if self.active else self.config_records)

    @property
    def detached_records(self):
        """The records kept for models taken out of the VM (``state: detached``)."""
        records = self.live_records if self.active else self.config_records
        return dict((m, r) for m, r in records.items() if _record.is_detached(r))

    @property
    def shared_memory(self):
        return _libvirt.has_shared_memory(self.live_xml if self.active else self.config_xml)

    def device(self, tag, config=False):
        for dev in (self.config_devices if config else self.live_devices):
            if dev['tag'] == tag:
                return dev
        return None

    def devices_with_tag(self, tag, config=False):
        return [d for d in (self.config_devices if config else self.live_devices) if d['tag'] == tag]

    def backend_alive(self, tag):
        """Whether the virtiofsd of the live device with this tag runs (None: unknown or no device)."""
        dev = self.device(tag)
        if dev is None or not hasattr(self.domain, 'backend_alive'):
            return None
        return self.domain.backend_alive(dev['alias'])

    def guest_mounts_of(self, source, root=None):
        """The guest's virtiofs mounts of this device tag, in mount order, optionally only those showing this
        directory of it (``/`` for a device's base mount, ``/<entry>`` for a model's bind); [] when the guest
        was not read."""
        return [m for m in (self.guest_mounts or []) if m['source'] == source and m['fstype'] == _guest.FSTYPE
                and (root is None or m.get('root', '/') == root)]

    def model_mounts(self, record):
        """The guest mounts of one recorded model: its binds from its device's base mount, or the mounts of its
        own device (a model recorded without a shared device)."""
        if record.get('device'):
            return self.guest_mounts_of(record['device'], '/' + record['tag'])
        return self.guest_mounts_of(record['tag'], '/')

    def model_mount(self, record, path=None):
        """The visible guest mount of the model at ``path`` (default: its recorded mount_path), or None."""
        return visible_at(self.model_mounts(record), path or record['mount_path'])

    def base_mount(self, device):
        """The guest's mount of a shared device at its base, or None."""
        key = _export.key_of_tag(device)
        return visible_at(self.guest_mounts_of(device, '/'), _export.guest_base(key)) if key else None

    def guest_mount_at(self, path):
        """The last mount at this guest path (the visible one, of any file system), or None."""
        return visible_at(self.guest_mounts or [], path)

    def stale_bind_at(self, path, source):
        """The visible mount at ``path`` when it is a bind of the guest directory ``source`` taken from the file
        system that holds that directory instead of from a shared device: what a model's fstab line makes at boot
        when the base mount above its source is missing (systemd creates a bind mount's missing source directory,
        on the guest's /run). It serves nothing; None when the mount at path is anything else."""
        at = self.guest_mount_at(path)
        if at is None or at['fstype'] == _guest.FSTYPE:
            return None
        holder = holding([e for e in self.guest_mounts or [] if e is not at], source)
        return at if holder is not None and holder['fstype'] != _guest.FSTYPE and shows(at, holder, source) else None

    def records_on(self, device):
        """The models recorded (live or persistent) on this shared device, detached ones aside."""
        return sorted(set(m for records in (self.live_records, self.config_records)
                          for m, r in records.items() if r.get('device') == device and not _record.is_detached(r)))

    def data_path(self, device, host, key, entry, guest_mount_id):
        """What the guest mount of a model reads through now (see ``data_path``), from the live XML as read."""
        return data_path(self.domain, self.live_devices, device, host, key, entry, guest_mount_id)


def data_path(domain, live_devices, device, host, key, entry, guest_mount_id):
    """What a model's guest mount reads through, as one string: the virtiofsd process of its device (PID and
    start time), the host's bind of the model in the export tree (its mount ID and device: a new bind, or a
    bind of a volume mounted again, differs) and the guest's ID of the mount itself; None when any is unknown.
    ``host``: the ``_juicefs.Host``."""
    if guest_mount_id is None:
        return None
    dev = [d for d in live_devices if d['tag'] == device]
    backend = domain.backend_identity(dev[0]['alias']) if len(dev) == 1 else None
    host_id = host.entry_id(domain.uuid, key, entry) if backend else None
    return '%s@%s#%s' % (backend, host_id, guest_mount_id) if host_id else None


class HostVolumes:
    """The host's volume mounts, each looked at once: ``mounted``, ``absent``, ``dead``, ``slow`` or ``foreign``
    (see ``_juicefs.Host.status``), and which volume is mounted. A record's own mount root (``root``) wins over
    the one given (``mount_root``), which serves the records without one."""

    def __init__(self, host, mount_root):
        self.host = host
        self.mount_root = mount_root
        self._status = {}
        self._identity = {}

    def point(self, volume, read_only, root=None):
        return _juicefs.mountpoint(volume, read_only, root or self.mount_root)

    def status(self, volume, read_only, root=None):
        point = self.point(volume, read_only, root)
        if point not in self._status:
            self._status[point] = self.host.status(point, volume)
        return self._status[point]

    def identity(self, volume, read_only, root=None):
        """(name, UUID) of the volume mounted at the volume's point (it must be ``mounted``), or None."""
        point = self.point(volume, read_only, root)
        if point not in self._identity:
            self._identity[point] = self.host.mounted_identity(point)
        return self._identity[point]
