# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The truth per mount for vm_model_mount_info: the read model of each VM turned into statuses, reasons and
orphans."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _juicefs
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _record
from ansible_collections.aimodel.kvm.plugins.module_utils import _spec
from ansible_collections.aimodel.kvm.plugins.module_utils._state import HostVolumes, VmState


def collect(conn, vm, model, mount_root, agent_timeout):
    """(mounts, orphans, vms) of one VM (``vm``) or of every VM of the connection, optionally of one model."""
    if vm:
        domain = conn.lookup(vm)
        domains = [domain] if domain is not None else []
    else:
        domains = conn.domains()
    mounts, orphans, vms = [], [], []
    host_volumes = HostVolumes(_juicefs.Host(), mount_root)
    for domain in domains:
        try:
            state = VmState(domain, _guest.Agent(domain, agent_timeout))
        except _libvirt.VirtError as exc:
            if exc.code == _libvirt.ERR_NO_DOMAIN:
                continue  # undefined while we looked: it has no mounts any more
            raise
        entries, strays = report(state, domain.name, host_volumes)
        if model:
            entries = [e for e in entries if e['model'] == model]
            strays = []
        mounts.extend(entries)
        orphans.extend(strays)
        vms.append({'name': domain.name, 'uuid': domain.uuid, 'active': state.active, 'persistent': state.persistent,
                    'guest_reachable': state.guest_error is None if state.active else None})
    return mounts, orphans, vms


STATUS_MOUNTED = 'mounted'
STATUS_PENDING = 'pending'
STATUS_DEGRADED = 'degraded'


def report(state, vm_name, host_volumes=None):
    """The truth per recorded mount of one VM, plus orphans (devices of ours without a record, records without
    a device). ``host_volumes``: a ``_state.HostVolumes`` (None: the host volumes are not looked at)."""
    entries = []
    records = dict(state.records)
    access = {}
    if state.active and state.guest_mounts is not None:
        # Never probe a mount whose virtiofsd is dead: the probe would hang in the guest for good.
        paths = [r['mount_path'] for r in records.values()
                 if r.get('guest_mount') and state.backend_alive(r['tag']) is not False
                 and state.guest_mount(r['tag'], r['mount_path']) is not None]
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
            here = state.guest_mount(tag, rec['mount_path'])
            mounted = here is not None
            if here and rec.get('read_ahead_kb'):
                try:
                    read_ahead = state.agent.read_ahead_kb(here['dev'])
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
            if host_volumes is not None:
                host = host_volumes.status(rec['volume'], rec.get('read_only', True))
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
