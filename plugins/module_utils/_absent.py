# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The plan of ``state: absent``: the model's guest mounts first, then its fstab lines, its bind in the VM's
export tree, the shared device when it was the last model on it (or the model's own device, from the earlier
layout), and the record. Everything but the model's name comes from the record.

``state: detached`` (``plan(ctx, keep_record=True)``) takes the same steps but keeps the record, marked
detached, so that ``state: mounted`` from it brings the model back (on this host or, after a migration, on
another); a model already detached, or without a record, is nothing to do.

A model without a record takes away what carries its tag (or the tag an earlier release derived for it): a
device of its own, its guest mounts and fstab lines, its binds in the export tree; never what carries a tag that
another model's record names."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.aimodel.kvm.plugins.module_utils import _export
from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _record
from ansible_collections.aimodel.kvm.plugins.module_utils import _spec
from ansible_collections.aimodel.kvm.plugins.module_utils import _tuning
from ansible_collections.aimodel.kvm.plugins.module_utils._mounted import BACKEND_DEAD, drop_shared, fstab_key, without_unused_base
from ansible_collections.aimodel.kvm.plugins.module_utils._plan import OperationFailed, scope


def plan(ctx, keep_record=False):
    """Add the steps that take the model out of the VM; (record before, None), or with ``keep_record``
    (record before, the record kept, marked detached)."""
    state, model, add = ctx.state, ctx.desired['model'], ctx.plan.add
    running = state.active
    current = state.live_records.get(model) if running else None
    current = current or state.config_records.get(model)
    if keep_record and (current is None or _record.is_detached(current)):
        return current, current
    record = current or _unrecorded(state, model)
    if current is None and _claimed(state, record['tag']):
        # A tag is no identity: another model's record names this tag, so what carries it is that model's.
        return None, None
    _guest_side(ctx, current, record)
    if running and state.fstab is not None:
        new_fstab = _guest.fstab_without(state.fstab, fstab_key(record))
        if record.get('device'):
            new_fstab = without_unused_base(new_fstab, state, record['device'], model)
        if new_fstab != state.fstab:
            ctx.plan.add_guest('remove the fstab lines of %s in the guest' % model, lambda: ctx.agent.write_file(_guest.FSTAB, new_fstab))
        if record.get('device'):
            rest = dict((k, r) for k, r in state.records.items() if k != model)
            _tuning.plan_unit(ctx, record['device'], new_fstab, _tuning.device_read_ahead(rest, record['device']))
    if record.get('device'):
        key, uuid = _export.key_of_tag(record['device']), ctx.domain.uuid
        add('take %s out of the export tree %s' % (record['tag'], _export.view_dir(uuid, key)),
            lambda: ctx.host.unpin(uuid, key, record['tag']))
        drop_shared(ctx, record['device'], model)
    else:
        _own_device(ctx, record['tag'])
    if current is None:
        _stray_binds(ctx, [t for t in (_spec.derive_tag(model), _spec.legacy_tag(model)) if not _claimed(state, t)])
    live_records = dict(state.live_records)
    config_records = dict(state.config_records)
    in_live = running and model in live_records
    in_cfg = state.persistent and model in config_records
    if keep_record:
        return current, _keep_detached(ctx, current, live_records if in_live else None, config_records if in_cfg else None)
    if in_live or in_cfg:
        live_records.pop(model, None)
        config_records.pop(model, None)
        add('remove the record of %s (%s)' % (model, scope(in_live, in_cfg)),
            lambda: ctx.write_records(live_records if in_live else None, config_records if in_cfg else None))
    return current, None


def _keep_detached(ctx, current, live_records, config_records):
    """The step that marks the record detached (on the sides that hold it); the record kept."""
    model = current['model']
    kept = dict(current, detached='true', updated=_record.timestamp())
    kept.pop('verified', None)
    for records in (live_records, config_records):
        if records is not None:
            records[model] = dict(kept)
    ctx.plan.add('mark the record of %s detached (%s)' % (model, scope(live_records is not None, config_records is not None)),
                 lambda: ctx.write_records(live_records, config_records))
    return kept


def _guest_side(ctx, current, record):
    """The model's guest mounts, newest first; refused when the guest cannot be asked or would hang."""
    state, force = ctx.state, ctx.params['force']
    if not state.active:
        return
    device = record.get('device') or record['tag']
    error = state.guest_error
    if error is not None and (state.devices_with_tag(device) or current) and not force:
        if error.unreachable:
            why, fix = 'the guest agent does not answer', 'start qemu-guest-agent'
        elif isinstance(error, _guest.CommandsDisabled):
            why, fix = 'the guest agent refuses the commands that read the guest', 'allow them'
        else:
            why, fix = 'the guest side cannot be read', 'repair the guest'
        raise OperationFailed('%s: %s, so it cannot be checked that the guest no longer uses %s; nothing was changed '
                              '(%s, or use force: true to detach anyway): %s'
                              % (ctx.where, why, ctx.desired['model'], fix, error))
    if state.guest_mounts is None:
        return
    mounts = state.model_mounts(record)
    if state.backend_alive(device) is False and mounts:
        raise OperationFailed(BACKEND_DEAD % (ctx.where, device, ', '.join(m['target'] for m in mounts)))
    for entry in reversed(mounts):
        target = entry['target']
        ctx.plan.add_guest('unmount %s from %s in the guest%s' % (record['model'], target, ' (lazily if busy)' if force else ''),
                           lambda target=target: ctx.guest_umount(target, force))
    if record.get('device') and record.get('mount_path'):
        path = record['mount_path']
        if state.stale_bind_at(path, fstab_key(record)) is not None:
            ctx.plan.add_guest('unmount the empty bind at %s in the guest (the fstab made it at boot while the base '
                               'mount of %s was missing)' % (path, record['device']), lambda: ctx.guest_umount(path, True))


def _own_device(ctx, tag):
    """A model mounted as a device of its own (the earlier layout): every live device with its tag (the first
    one also from the persistent config), or the persistent one."""
    state = ctx.state
    live_devs = state.devices_with_tag(tag) if state.active else []
    cfg_dev = state.device(tag, config=True) if state.persistent else None
    if live_devs:
        xml = _libvirt.filesystem_xml(live_devs[0]['source'], tag)
        for index in range(len(live_devs)):
            both = index == 0 and cfg_dev is not None
            ctx.plan.add('detach device %s (%s) and wait until the guest released it' % (tag, scope(True, both)),
                         lambda both=both: ctx.detach(xml, tag, True, both))
    elif cfg_dev is not None:
        xml = _libvirt.filesystem_xml(cfg_dev['source'], tag)
        ctx.plan.add('detach device %s (persistent)' % tag, lambda: ctx.domain.detach(xml, False, True))


def _stray_binds(ctx, tags):
    """The binds in the VM's export tree that carry a tag of a model without a record (a crashed run can leave
    one), and the export directory of a device left with none: no model recorded on it, no device serving it."""
    state, uuid = ctx.state, ctx.domain.uuid
    bound = ctx.host.bound_entries(uuid)
    stray = [(key, entry) for key, entry in bound if entry in tags]
    for key, entry in stray:
        ctx.plan.add('take %s out of the export tree %s (no record names it)' % (entry, _export.view_dir(uuid, key)),
                     lambda key=key, entry=entry: ctx.host.unpin(uuid, key, entry))
    for key in sorted(set(key for key, _entry in stray)):
        device = _export.device_tag(key)
        if [b for b in bound if b[0] == key and b not in stray] or state.records_on(device) \
                or state.device(device) or state.device(device, config=True):
            continue
        ctx.plan.add('remove the export directory %s' % _export.view_dir(uuid, key),
                     lambda key=key: ctx.host.remove_view(uuid, key))


def _claimed(state, tag):
    """Whether a record (live or persistent) of any model names this tag."""
    return any(r.get('tag') == tag for records in (state.live_records, state.config_records) for r in records.values())


def _unrecorded(state, model):
    """What a model without a record may have left: devices, guest mounts and fstab lines with its tag, or with
    the tag an earlier release derived for it."""
    tag = _spec.derive_tag(model)
    legacy = _spec.legacy_tag(model)
    if not (state.devices_with_tag(tag) or state.device(tag, config=True)) and \
            (state.devices_with_tag(legacy) or state.device(legacy, config=True) or state.guest_mounts_of(legacy)):
        tag = legacy
    return {'model': model, 'tag': tag}
