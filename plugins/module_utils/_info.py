# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The truth per mount for vm_model_mount_info: the read model of each VM turned into statuses, reasons and
orphans."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.aimodel.kvm.plugins.module_utils import _export
from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _juicefs
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _record
from ansible_collections.aimodel.kvm.plugins.module_utils import _spec
from ansible_collections.aimodel.kvm.plugins.module_utils import _tuning
from ansible_collections.aimodel.kvm.plugins.module_utils._errors import AimodelError
from ansible_collections.aimodel.kvm.plugins.module_utils._mounted import fstab_key
from ansible_collections.aimodel.kvm.plugins.module_utils._state import HostVolumes, VmState


def collect(conn, vm, model, mount_root, agent_timeout, guest_report_timeout):
    """(mounts, orphans, vms) of one VM (``vm``) or of every VM of the connection, optionally of one model.

    VMs are isolated: a guest that misbehaves (answers out of bounds, too slowly, or with garbage) gets the
    reason ``guest_error`` on its own mounts and its message in ``vms``; a VM that cannot be read at all is
    listed with its ``error``; every other VM is reported in full. Each guest gets ``guest_report_timeout``
    seconds of guest time."""
    if vm:
        domain = conn.lookup(vm)
        domains = [domain] if domain is not None else []
    else:
        domains = conn.domains()
    mounts, orphans, vms = [], [], []
    host_volumes = HostVolumes(_juicefs.Host(), mount_root)
    for domain in domains:
        agent = _guest.Agent(domain, agent_timeout, budget=guest_report_timeout, budget_option='guest_report_timeout')
        try:
            state = VmState(domain, agent)
            try:
                entries, strays = report(state, domain.name, host_volumes)
            except _guest.GuestError as exc:
                # The guest went wrong half-way: report what the host knows, with the guest side unknown.
                state.guest_error, state.guest_mounts, state.fstab = exc, None, None
                entries, strays = report(state, domain.name, host_volumes)
        except _libvirt.VirtError as exc:
            if exc.code == _libvirt.ERR_NO_DOMAIN:
                continue  # undefined while we looked: it has no mounts any more
            vms.append({'vm': domain.name, 'uuid': domain.uuid, 'error': _guest.clip(exc)})
            continue
        except AimodelError as exc:
            vms.append({'vm': domain.name, 'uuid': domain.uuid, 'error': _guest.clip(exc)})
            continue
        if model:
            entries = [e for e in entries if e['model'] == model]
            strays = []
        mounts.extend(entries)
        orphans.extend(strays)
        error = state.guest_error
        vm_entry = {'vm': domain.name, 'uuid': domain.uuid, 'active': state.active, 'persistent': state.persistent,
                    'guest_reachable': (error is None or not error.unreachable) if state.active else None,
                    'guest_error': _guest.clip(error) if state.active and error is not None else None,
                    'free_hotplug_slots': _libvirt.free_hotplug_slots(state.live_xml) if state.active else None}
        vm_entry.update(_observed(state))
        vms.append(vm_entry)
    return mounts, orphans, vms


# What of a guest cannot be observed when its agent has disabled commands: the mount table and the fstab (read
# with the file commands or a guest command), the readahead (a sysfs file, read the same way) and whether a
# mount answers (a guest command).
UNOBSERVED_READ = ['mounts', 'fstab', 'read_ahead', 'accessible']


def _observed(state):
    """What the guest's agent refuses (the commands of the collection it has disabled), what could not be observed
    because of that, and whether the guest's file systems are frozen; for a running VM whose agent answered."""
    agent, error = state.agent, state.guest_error
    if not state.active or agent is None or (error is not None and error.unreachable):
        return {'guest_disabled_commands': None, 'guest_unobserved': None, 'guest_frozen': None}
    disabled = agent.disabled(_guest.EXEC_COMMANDS + _guest.FILE_READ_COMMANDS)
    if isinstance(error, _guest.CommandsDisabled):
        unobserved = list(UNOBSERVED_READ)
        disabled = sorted(set(disabled) | set(error.commands))
    else:
        unobserved = ['accessible'] if agent.disabled(_guest.EXEC_COMMANDS) else []
    return {'guest_disabled_commands': sorted(disabled), 'guest_unobserved': unobserved,
            'guest_frozen': agent.frozen or bool(getattr(error, 'frozen', False))}


STATUS_MOUNTED = 'mounted'
STATUS_PENDING = 'pending'
STATUS_DEGRADED = 'degraded'
STATUS_DETACHED = 'detached'


def report(state, vm_name, host_volumes=None):
    """The truth per recorded mount of one VM, plus orphans (devices of ours without a record, records without
    a device, binds in the VM's export tree without a record). ``host_volumes``: a ``_state.HostVolumes``
    (None: the host side is not looked at)."""
    entries = []
    records = dict(state.records)
    access = {}
    if state.active and state.guest_mounts is not None and not state.agent.disabled(_guest.EXEC_COMMANDS):
        # Never probe a mount whose virtiofsd is dead: the probe would hang in the guest for good. An agent that
        # runs no guest command cannot probe (guest_accessible stays null).
        paths = [r['mount_path'] for r in records.values()
                 if r.get('guest_mount') and state.backend_alive(_device_of(r)) is not False
                 and state.model_mount(r) is not None]
        access = state.agent.accessible_many(paths) if paths else {}
    tuning = _tuning.GuestTuning(state.agent) if state.active and state.guest_mounts is not None else None
    for model in sorted(records):
        entries.append(_entry(state, vm_name, host_volumes, records[model], access, tuning))
    detached = state.detached_records
    for model in sorted(detached):
        entries.append(detached_entry(state, vm_name, detached[model]))
    return entries, _orphans(state, vm_name, host_volumes, records, [e for e in entries if e['status'] != STATUS_DETACHED])


def detached_entry(state, vm_name, rec):
    """A record kept for a model taken out of the VM (state: detached): status ``detached``, nothing served;
    whatever still serves its device or pins its tag is reported as an orphan."""
    entry = dict(_record.public(rec))
    entry.update({
        'vm': vm_name,
        'status': STATUS_DETACHED,
        'reasons': [],
        'layout': 'shared_device' if rec.get('device') else 'own_device',
        'device_live': state.device(_device_of(rec)) is not None if state.active else False,
        'device_config': state.device(_device_of(rec), config=True) is not None if state.persistent else False,
        'host_pinned': None,
        'guest_mounted': state.model_mount(rec) is not None if state.active and state.guest_mounts is not None else None,
        'guest_accessible': None,
        'in_fstab': None,
        'tuning': None,
    })
    return entry


def _device_of(record):
    return record.get('device') or record['tag']


def _entry(state, vm_name, host_volumes, rec, access, tuning):
    device = _device_of(rec)
    live = state.device(device) is not None
    config = state.device(device, config=True) is not None
    mounted = accessible = read_ahead = pinned = None
    if state.active and state.guest_mounts is not None:
        here = state.model_mount(rec)
        mounted = here is not None
        # One readahead per guest file system: the shared device's base mount, or the model's own device.
        ahead_of = state.base_mount(device) if rec.get('device') else here
        if here and ahead_of and rec.get('read_ahead_kb'):
            try:
                read_ahead = state.agent.read_ahead_kb(ahead_of['dev'])
            except _guest.GuestError:
                read_ahead = None
    in_fstab = None
    if state.fstab is not None:
        in_fstab = _guest.fstab_find(state.fstab, fstab_key(rec)) is not None and (
            not rec.get('device') or _guest.fstab_find(state.fstab, device) is not None)
    host = None
    if host_volumes is not None:
        host = host_volumes.status(rec['volume'], rec.get('read_only', True), rec.get('mount_root'))
        if rec.get('device') and state.active and host == 'mounted':
            pinned = host_volumes.host.entry_state(state.domain.uuid, _export.key_of_tag(device), rec['tag'],
                                                   host_volumes.point(rec['volume'], rec.get('read_only', True), rec.get('mount_root')),
                                                   rec['source_path'])
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
        elif state.backend_alive(device) is False:
            reasons.append('device_backend_dead')
        if rec.get('persist') and state.persistent and not config:
            reasons.append('device_missing_config')
        if rec.get('guest_mount'):
            if isinstance(state.guest_error, _guest.CommandsDisabled):
                reasons.append('guest_commands_disabled')
            elif state.guest_error is not None:
                reasons.append('guest_unreachable' if state.guest_error.unreachable else 'guest_error')
            elif not mounted:
                reasons.append('not_mounted_in_guest')
            elif rec['mount_path'] in access:
                accessible = access[rec['mount_path']]
                if not accessible:
                    reasons.append('stale_guest_mount')
            if rec.get('persist') and in_fstab is False:
                reasons.append('fstab_missing')
        if host in ('dead', 'foreign'):
            reasons.append('host_volume_dead')
        elif host == 'slow':
            reasons.append('host_volume_slow')
        elif host == 'mounted' and rec.get('volume_uuid') and \
                (host_volumes.identity(rec['volume'], rec.get('read_only', True), rec.get('mount_root')) or (None, None))[1] != rec['volume_uuid']:
            reasons.append('host_volume_not_recorded')
        elif pinned in PIN_REASONS:
            reasons.append(PIN_REASONS[pinned])
        status = STATUS_DEGRADED if reasons else STATUS_MOUNTED
    entry = dict(_record.public(rec))
    entry.update({
        'vm': vm_name,
        'status': status,
        'reasons': reasons,
        'layout': 'shared_device' if rec.get('device') else 'own_device',
        'device_live': live,
        'device_config': config,
        'host_pinned': pinned,
        'guest_mounted': mounted,
        'guest_accessible': accessible,
        'in_fstab': in_fstab,
        'tuning': _tuning_of(state, rec, mounted, read_ahead, in_fstab, tuning),
    })
    return entry


def _tuning_of(state, rec, mounted, read_ahead, in_fstab, tuning):
    """The guest's readahead of a mount, next to what is asked, and whether the guest keeps it over a reboot: a
    tuning difference is no drift of what is served (the mount stays ``mounted``). None where no readahead is
    asked, the model is not mounted in the guest, or the guest cannot be read."""
    target = read_ahead_target(state, rec)
    if not target or not mounted or tuning is None:
        return None
    kept_by, not_kept = None, None
    if not rec.get('device'):
        not_kept = _tuning.OWN_DEVICE
    elif not (rec.get('persist') and in_fstab):
        not_kept = _tuning.NOT_PERSISTED
    else:
        try:
            kept_by, not_kept = tuning.kept(rec['device'], target)
        except _guest.GuestError:
            pass
    return {
        'read_ahead_kb': target,
        'guest_read_ahead_kb': read_ahead,
        'differs': None if read_ahead is None else read_ahead != target,
        'kept_on_reboot': None if kept_by is None and not_kept is None else kept_by is not None,
        'kept_by': kept_by,
        'not_kept': not_kept,
    }


# The host's bind of a model in the VM's export tree, when it is not what the record says.
PIN_REASONS = {'missing': 'not_pinned', 'stale': 'pin_stale', 'dead': 'pin_dead'}


def read_ahead_target(state, rec):
    """The readahead the guest should have for this model: a shared device has one, the largest its models ask."""
    if not rec.get('device'):
        return rec.get('read_ahead_kb')
    return _tuning.device_read_ahead(state.records, rec['device'])


def _orphans(state, vm_name, host_volumes, records, entries):
    used = set(_device_of(r) for r in records.values())
    orphans = []
    for entry in entries:
        if state.active and not entry['device_live'] and not entry['device_config']:
            orphans.append({'vm': vm_name, 'kind': 'record_without_device', 'where': 'record',
                            'tag': entry['tag'], 'model': entry['model'], 'source': None})
    for where, devices in (('live', state.live_devices), ('config', state.config_devices)):
        for dev in devices:
            ours = _spec.is_our_tag(dev['tag']) or _export.key_of_tag(dev['tag']) is not None
            if ours and dev['tag'] not in used:
                orphans.append({'vm': vm_name, 'kind': 'device_without_record', 'where': where,
                                'tag': dev['tag'], 'model': None, 'source': dev['source']})
    if host_volumes is not None:
        pinned = set((_export.key_of_tag(r['device']), r['tag']) for r in records.values() if r.get('device'))
        for key, entry in host_volumes.host.bound_entries(state.domain.uuid):
            if (key, entry) not in pinned:
                orphans.append({'vm': vm_name, 'kind': 'bind_without_record', 'where': 'host', 'tag': entry,
                                'model': None, 'source': _export.entry_path(state.domain.uuid, key, entry)})
    return orphans
