# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The observed state of one VM, read once: record, live XML, persistent XML, guest mount table and fstab.

Both modules read a VM through ``VmState``; ``report`` turns it into the truth per mount.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _record
from ansible_collections.aimodel.kvm.plugins.module_utils import _spec


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
        if self.active and read_guest and agent is not None:
            self.read_guest()

    def read_guest(self):
        try:
            self.guest_mounts = self.agent.mounts()
            self.fstab = self.agent.read_file(_guest.FSTAB) or ''
            self.guest_error = None
        except _guest.GuestError as exc:
            self.guest_mounts = None
            self.fstab = None
            self.guest_error = exc

    @property
    def records(self):
        """The records that describe the VM as it is now: live when running, persistent when stopped."""
        return self.live_records if self.active else self.config_records

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

    def guest_mounts_of(self, tag):
        return [m for m in (self.guest_mounts or []) if m['source'] == tag and m['fstype'] == _guest.FSTYPE]

    def guest_mount_at(self, path):
        """The last mount at this guest path (the visible one), or None."""
        found = None
        for entry in self.guest_mounts or []:
            if entry['target'] == path:
                found = entry
        return found


STATUS_MOUNTED = 'mounted'
STATUS_PENDING = 'pending'
STATUS_DEGRADED = 'degraded'


def report(state, vm_name, host_volume_status=None):
    """The truth per recorded mount, plus orphans (devices of ours without a record).

    ``host_volume_status``: callable(record) -> 'mounted' | 'absent' | 'dead' | 'foreign' | None.
    """
    entries = []
    records = dict(state.records)
    access = {}
    if state.active and state.guest_mounts is not None:
        # Never probe a mount whose virtiofsd is dead: the probe would hang in the guest for good.
        paths = [r['mount_path'] for r in records.values()
                 if r.get('guest_mount') and state.backend_alive(r['tag']) is not False
                 and any(m['target'] == r['mount_path'] for m in state.guest_mounts_of(r['tag']))]
        access = state.agent.accessible_many(paths) if paths else {}
    for model in sorted(records):
        rec = records[model]
        tag = rec['tag']
        live = state.device(tag) is not None
        config = state.device(tag, config=True) is not None
        mounted = None
        accessible = None
        read_ahead = None
        if state.active and state.guest_mounts is not None:
            here = [m for m in state.guest_mounts_of(tag) if m['target'] == rec['mount_path']]
            mounted = bool(here)
            if here and rec.get('read_ahead_kb'):
                try:
                    read_ahead = state.agent.read_ahead_kb(here[-1]['dev'])
                except _guest.GuestError:
                    read_ahead = None
        in_fstab = None
        if state.fstab is not None:
            in_fstab = _guest.fstab_find(state.fstab, tag) is not None
        reasons = []
        if not state.active:
            status = STATUS_PENDING
            reasons.append('vm_stopped')
            if state.persistent and not config:
                status = STATUS_DEGRADED
                reasons.append('device_missing_config')
        else:
            if not live:
                reasons.append('device_missing_live')
            elif state.backend_alive(tag) is False:
                reasons.append('device_backend_dead')
            if rec.get('persist') and state.persistent and not config:
                reasons.append('device_missing_config')
            if rec.get('guest_mount'):
                if state.guest_error is not None:
                    reasons.append('guest_unreachable')
                elif not mounted:
                    reasons.append('not_mounted_in_guest')
                elif rec['mount_path'] in access:
                    accessible = access[rec['mount_path']]
                    if not accessible:
                        reasons.append('stale_guest_mount')
                if rec.get('persist') and in_fstab is False:
                    reasons.append('fstab_missing')
                if read_ahead is not None and read_ahead != rec.get('read_ahead_kb'):
                    reasons.append('read_ahead_differs')
            if host_volume_status is not None:
                host = host_volume_status(rec)
                if host in ('dead', 'foreign'):
                    reasons.append('host_volume_dead')
            status = STATUS_DEGRADED if reasons else STATUS_MOUNTED
        entry = dict(_record.public(rec))
        entry.update({
            'vm': vm_name,
            'status': status,
            'reasons': reasons,
            'device_live': live,
            'device_config': config,
            'guest_mounted': mounted,
            'guest_accessible': accessible,
            'guest_read_ahead_kb': read_ahead,
            'in_fstab': in_fstab,
        })
        entries.append(entry)
    recorded_tags = set(r['tag'] for r in records.values())
    orphans = []
    for entry in entries:
        if state.active and not entry['device_live'] and not entry['device_config']:
            orphans.append({'vm': vm_name, 'kind': 'record_without_device', 'where': 'record',
                            'tag': entry['tag'], 'model': entry['model'], 'source': None})
    for where, devices in (('live', state.live_devices), ('config', state.config_devices)):
        for dev in devices:
            if _spec.is_our_tag(dev['tag']) and dev['tag'] not in recorded_tags:
                orphans.append({'vm': vm_name, 'kind': 'device_without_record', 'where': where,
                                'tag': dev['tag'], 'source': dev['source']})
    return entries, orphans
