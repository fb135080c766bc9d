# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The plan of ``state: mounted``: one layer per function, in the order the steps run.

checks -> guest mount point -> host volume and the model's directory -> converging an earlier mount of the model
-> the device (live and persistent) -> the guest fstab -> the guest mount and its readahead -> the record.
Each layer reads the VM's read model and the facts earlier layers found (``Mount``) and adds steps.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import datetime
import os

from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _juicefs
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _lock
from ansible_collections.aimodel.kvm.plugins.module_utils import _record
from ansible_collections.aimodel.kvm.plugins.module_utils import _state
from ansible_collections.aimodel.kvm.plugins.module_utils._mountinfo import visible_at
from ansible_collections.aimodel.kvm.plugins.module_utils._plan import OperationFailed, scope

SHARED_MEMORY_HINT = (
    "add <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking> to the domain XML "
    "(virsh edit) and restart the VM (a shutdown and start, not a reboot): virtiofs needs guest memory shared "
    "with virtiofsd")

BACKEND_DEAD = (
    '%s: the virtiofsd process of device %s is gone while the guest still mounts it at %s. Any access to that mount, '
    'even an unmount, hangs in the guest for good and keeps the device from being detached, so nothing was changed. '
    'Restart the VM (shutdown and start; the persistent configuration brings the device back with a new virtiofsd) '
    'and run again')


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


class Mount:
    """The facts the layers of one plan share. Built from the context; each layer fills in what it found, in
    order; the steps' closures read (and the guest mount step updates) them when they run."""

    def __init__(self, ctx):
        desired = ctx.desired
        self.ctx = ctx
        self.desired = desired
        self.model, self.tag, self.path = desired['model'], desired['tag'], desired['mount_path']
        self.running = ctx.state.active
        self.current = ctx.state.records.get(self.model)
        self.host = _state.HostVolumes(ctx.host, ctx.volume['mount_root'])
        self.point = self.host.point(desired['volume'], desired['read_only'])
        # The model's real directory on the host: resolved at planning when the volume is up, else by a step.
        self.source_dir = os.path.join(self.point, desired['source_path'])
        self.host_state = None
        self.client = None
        # Guest mounts of the tag that steps of this plan take away before the device changes.
        self.unmounted = []
        self.all_unmounted = False
        # The data path under which the guest mount at path is known to be readable in this run (or None).
        self.verified = None
        self.broken = False
        self.check_read_ahead = False
        self.live_dev = None
        self.cfg_dev = None
        self.want_config = False
        self.guest_touched = False

    def guest_mounts(self):
        """The guest mounts of the tag that are still there once the steps planned so far have run."""
        if self.all_unmounted:
            return []
        return [m for m in self.ctx.state.guest_mounts_of(self.tag) if m not in self.unmounted]

    def guest_mount(self, path):
        return visible_at(self.guest_mounts(), path)


def plan(ctx):
    """Add the steps that make the desired mount true; (record before, record after)."""
    mount = Mount(ctx)
    _check(mount)
    _mount_point(mount)
    _host_volume(mount)
    _converge(mount)
    _device(mount)
    _fstab(mount)
    _guest_mount(mount)
    return mount.current, _record_layer(mount)


def _check(m):
    ctx, state = m.ctx, m.ctx.state
    for other, rec in state.records.items():
        if other != m.model and rec.get('mount_path') == m.path:
            raise OperationFailed('%s: mount_path %s already holds model %s; model %s cannot be mounted there '
                                  '(unmount %s first or choose another mount_path)' % (ctx.where, m.path, other, m.model, other))
        if other != m.model and rec.get('tag') == m.tag:
            raise OperationFailed('%s: models %s and %s derive the same virtiofs tag %s' % (ctx.where, m.model, other, m.tag))
    if not state.shared_memory:
        raise OperationFailed('%s has no shared memory backing, which virtiofs needs: %s' % (ctx.where, SHARED_MEMORY_HINT))
    if m.running and state.guest_error is not None:
        raise OperationFailed('%s: the guest agent does not answer, so the guest side cannot be checked or changed '
                              '(is qemu-guest-agent running in the guest?): %s' % (ctx.where, state.guest_error))
    if m.running and m.desired['guest_mount']:
        at = state.guest_mount_at(m.path)
        if at is not None and not (at['source'] == m.tag and at['fstype'] == _guest.FSTYPE):
            raise OperationFailed('%s: %s is already a mount point in the guest (%s, %s), not of model %s; '
                                  'nothing was changed' % (ctx.where, m.path, at['source'], at['fstype'], m.model))


def _mount_point(m):
    """The mount point first: a path the guest cannot use (a file, a read-only place) fails before anything
    changes, on the host (its volume mount) or in the VM (a device)."""
    if m.running and m.desired['guest_mount'] and m.guest_mount(m.path) is None:
        agent, path, created = m.ctx.agent, m.path, []
        m.ctx.plan.add('create the mount point %s in the guest' % path,
                       lambda: created.extend(agent.make_dirs(path)),
                       lambda: agent.remove_dirs(created), 'removed the directories it created in the guest')


def _host_volume(m):
    """The host volume (mounted, or remounted when its client died) and the model's directory on it."""
    desired, volume, add = m.desired, m.ctx.volume, m.ctx.plan.add
    m.host_state = m.host.status(desired['volume'], desired['read_only'])
    m.client = m.ctx.host.find_client(volume['client_path'])
    if m.host_state == 'foreign':
        raise OperationFailed('%s is in use by something else (%s), not by volume %s'
                              % (m.point, m.ctx.host.describe(m.point), desired['volume']))
    if m.host_state == 'dead':
        add('remount the dead host volume %s at %s' % (desired['volume'], m.point),
            lambda: mount_volume(m.ctx, m.client, clear_dead=True))
    elif m.host_state == 'absent':
        add('mount volume %s %s on the host at %s'
            % (desired['volume'], 'read-only' if desired['read_only'] else 'read-write', m.point),
            lambda: mount_volume(m.ctx, m.client),
            undo_text='host volume %s stays mounted at %s (shared by all VMs of this host)' % (desired['volume'], m.point))
    if m.host_state == 'mounted':
        m.source_dir = resolve_source(m.ctx.host, m.point, desired)
    else:
        def resolve():
            m.source_dir = resolve_source(m.ctx.host, m.point, desired)
        add('check that model %s exists at %s in volume %s' % (m.model, desired['source_path'], desired['volume']), resolve)
    if m.ctx.params['warmup']:
        add('warm up %s in the host cache' % desired['source_path'],
            lambda: m.ctx.host.warmup(m.client, os.path.join(m.point, desired['source_path'])))


def mount_volume(ctx, client, clear_dead=False):
    """Mount the host volume under the volume's lock (another run may have mounted or repaired it meanwhile)."""
    desired, volume, host = ctx.desired, ctx.volume, ctx.host
    with _lock.Lock('volume-%s-%s' % (desired['volume'], 'ro' if desired['read_only'] else 'rw'),
                    ctx.params['lock_timeout'], 'volume %s' % desired['volume']):
        point = _juicefs.mountpoint(desired['volume'], desired['read_only'], volume['mount_root'])
        current = host.status(point, desired['volume'])
        if current == 'mounted':
            return
        if current == 'dead' and clear_dead:
            host.lazy_unmount(point)
        host.mount(client, desired['volume'], volume['meta_url'], volume['password'], desired['read_only'],
                   root=volume['mount_root'], cache_dir=volume['cache_dir'], cache_size=volume['cache_size'])


def resolve_source(host, point, desired):
    try:
        found = host.resolve_source(point, desired['source_path'])
    except _juicefs.VolumeError as exc:
        raise OperationFailed('source_path: %s' % exc, field='source_path')
    if found is None:
        raise OperationFailed('source_path: model %s not found at %s in volume %s'
                              % (desired['model'], desired['source_path'], desired['volume']), field='source_path')
    return found


def _converge(m):
    """An earlier mount of this model at another path, or with another device, is unmounted first."""
    current, desired, agent = m.current, m.desired, m.ctx.agent
    if current is None or not m.running or not current.get('guest_mount'):
        return
    old_path = current['mount_path']
    device_changes = (current.get('volume'), current.get('source_path'), current.get('read_only'),
                      current.get('cache')) != (desired['volume'], desired['source_path'], desired['read_only'],
                                                desired['cache'])
    mounted_old = [e for e in m.guest_mounts() if e['target'] == old_path]
    if mounted_old and (old_path != m.path or device_changes or not desired['guest_mount']):
        m.ctx.plan.add('unmount %s from %s in the guest (converging to the new arguments)' % (m.tag, old_path),
                       lambda: agent.umount(old_path),
                       lambda: agent.mount_virtiofs(m.tag, old_path, current.get('read_only', True),
                                                    m.ctx.params['device_timeout']),
                       'mounted %s at %s in the guest again' % (m.tag, old_path))
        m.unmounted.extend(mounted_old)


def _device(m):
    """The virtiofs device, live and persistent: kept, replaced (outdated or broken) or attached."""
    ctx, state, desired, tag = m.ctx, m.ctx.state, m.desired, m.tag
    add = ctx.plan.add
    m.want_config = state.persistent and (desired['persist'] or not m.running)
    cache_mode = _libvirt.CACHE_MODES.get(desired['cache'])
    m.live_dev = live_dev = state.device(tag) if m.running else None
    m.cfg_dev = cfg_dev = state.device(tag, config=True) if state.persistent else None

    def stale(dev):
        return dev is not None and (dev['source'] != m.source_dir or dev['cache'] != cache_mode)

    if m.running and len(state.devices_with_tag(tag)) > 1:
        raise OperationFailed('%s has %d live devices with tag %s; unmount the model (state=absent) and mount it again'
                              % (ctx.where, len(state.devices_with_tag(tag)), tag))
    # A device whose data path is broken (the host volume died, or the guest cannot read the mount) is
    # replaced: remounting the host volume alone does not heal virtiofsd, a new device does.
    broken = m.host_state == 'dead'
    backend_dead = m.running and live_dev is not None and state.backend_alive(tag) is False
    if backend_dead and m.guest_mounts():
        raise OperationFailed(BACKEND_DEAD % (ctx.where, tag, ', '.join(e['target'] for e in m.guest_mounts())))
    broken = broken or backend_dead
    here = m.guest_mount(m.path) if m.running else None
    read_ahead = desired['read_ahead_kb'] if desired['guest_mount'] else 0
    if here is not None and live_dev is not None and not broken:
        now = state.data_path(tag, ctx.host, m.point, here['id'])
        if now is not None and (m.current or {}).get('verified') == now:
            # Proven readable before, and neither its virtiofsd, nor the host volume's mount, nor the guest
            # mount has changed since: not probed again (no guest process on a no-op).
            m.verified = now
        else:
            broken = not ctx.agent.accessible_many([m.path]).get(m.path, False)
            m.verified = None if broken else now
        # The readahead is read every time (one small sysfs file): it is lost with every new guest mount
        # and can be changed by hand, and vm_model_mount_info reports it.
        m.check_read_ahead = bool(read_ahead) and not broken
    m.broken = broken
    detach_live = m.running and live_dev is not None and (stale(live_dev) or broken)
    detach_cfg = cfg_dev is not None and (stale(cfg_dev) or not m.want_config)
    if m.running and (detach_live or live_dev is None):
        # Guest mounts of a device that is gone or about to go are dead: clear them first.
        for entry in reversed(m.guest_mounts()):
            add('unmount the %s %s from %s in the guest' % ('broken' if broken else 'stale', tag, entry['target']),
                lambda target=entry['target']: ctx.guest_umount(target, True))
        m.all_unmounted = True
    if detach_live or detach_cfg:
        old_xml = _libvirt.filesystem_xml((live_dev or cfg_dev)['source'] if detach_live else cfg_dev['source'], tag)
        add('detach the outdated device %s (%s)' % (tag, scope(detach_live, detach_cfg)),
            lambda: ctx.detach(old_xml, tag, detach_live, detach_cfg),
            lambda: ctx.domain.attach(old_xml, detach_live, detach_cfg),
            'attached the previous device %s again' % tag)
    attach_live = m.running and (live_dev is None or detach_live)
    attach_cfg = m.want_config and (cfg_dev is None or detach_cfg)
    if attach_live or attach_cfg:
        add('attach virtiofs device %s for %s (%s)' % (tag, desired['source_path'], scope(attach_live, attach_cfg)),
            lambda: attach(ctx, _libvirt.filesystem_xml(m.source_dir, tag, desired['cache']), tag, attach_live, attach_cfg),
            lambda: ctx.detach(_libvirt.filesystem_xml(m.source_dir, tag, desired['cache']), tag, attach_live, attach_cfg),
            'detached device %s (%s)' % (tag, scope(attach_live, attach_cfg)))


def attach(ctx, device_xml, tag, live, config):
    """Attach, and confirm in both XMLs: the device must really be there before anything else relies on it."""
    try:
        ctx.domain.attach(device_xml, live, config)
    except _libvirt.VirtError as exc:
        if live and 'requires shared memory' in str(exc):
            # The VM's XML has shared memory (checked before): this is libvirt < 9.2 after a libvirtd restart.
            raise OperationFailed('libvirt refused the hot-plug although the VM has shared memory backing: libvirt '
                                  'before 9.2 forgets it for running VMs once libvirtd restarts (Red Hat bug 2078693). '
                                  'Restart the VM (shutdown and start) and run again. libvirt said: %s' % exc)
        raise
    if live and not any(d['tag'] == tag for d in _libvirt.filesystems(ctx.domain.xml())):
        raise OperationFailed('device %s is not in the live XML after attaching it' % tag)
    if config and not any(d['tag'] == tag for d in _libvirt.filesystems(ctx.domain.xml(config=True))):
        raise OperationFailed('device %s is not in the persistent XML after attaching it' % tag)


def _fstab(m):
    """The fstab line before the guest mount: written while the guest is still discovering the device just
    attached, it costs no wall time. A stopped VM's guest part waits (pending)."""
    if not m.running:
        m.ctx.plan.pending = True
        return
    desired, tag, agent = m.desired, m.tag, m.ctx.agent
    old_fstab = m.ctx.state.fstab or ''
    if desired['guest_mount'] and desired['persist']:
        new_fstab = _guest.fstab_with(old_fstab, tag, _guest.fstab_line(tag, m.path, desired['read_only']))
    else:
        new_fstab = _guest.fstab_without(old_fstab, tag)
    if new_fstab != old_fstab and _guest.fstab_find(new_fstab, tag) != _guest.fstab_find(old_fstab, tag):
        m.ctx.plan.add('%s the fstab line of %s in the guest' % ('write' if _guest.fstab_find(new_fstab, tag) else 'remove', tag),
                       lambda: agent.write_file(_guest.FSTAB, new_fstab),
                       lambda: agent.write_file(_guest.FSTAB, old_fstab),
                       'restored the guest fstab')


def _guest_mount(m):
    """The guest mount, and its readahead (the guest kernel's default of 128 KiB reads the weights slower)."""
    if not (m.running and m.desired['guest_mount']):
        return
    ctx, desired, tag, path, agent = m.ctx, m.desired, m.tag, m.path, m.ctx.agent
    add = ctx.plan.add
    read_ahead = desired['read_ahead_kb']
    ro_opt = 'ro' if desired['read_only'] else 'rw'
    here = m.guest_mount(path)
    if here is not None and ro_opt not in here['options']:
        add('unmount %s from %s in the guest (access mode changes)' % (tag, path), lambda: agent.umount(path))
        here = None
    if here is None:
        made = {}

        def guest_mount():
            agent.mount_virtiofs(tag, path, desired['read_only'], ctx.params['device_timeout'])
            try:
                found = visible_at([e for e in agent.mounts() if e['source'] == tag], path)
                if found is None:
                    raise OperationFailed('the guest mounted %s at %s but its mount table does not show it' % (tag, path))
            except Exception:
                # This step failed, so the rollback will not undo it: take the mount back here.
                ctx.guest_umount(path, True)
                raise
            made.update(found)
            m.verified = _state.data_path(ctx.domain, _libvirt.filesystems(ctx.domain.xml()), tag, ctx.host, m.point,
                                          found['id'])
        add('mount %s at %s in the guest (%s)' % (tag, path, ro_opt), guest_mount,
            lambda: agent.umount(path), 'unmounted %s from %s in the guest' % (tag, path))
        if read_ahead:
            add('set the readahead of %s in the guest to %d KiB' % (tag, read_ahead),
                lambda: agent.set_read_ahead_kb(made['dev'], read_ahead))
        m.guest_touched = True
    elif m.check_read_ahead:
        dev = here['dev']
        now_kb = agent.read_ahead_kb(dev)
        if now_kb is not None and now_kb != read_ahead:
            add('set the readahead of %s in the guest to %d KiB (was %d KiB)' % (tag, read_ahead, now_kb),
                lambda: agent.set_read_ahead_kb(dev, read_ahead),
                lambda: agent.set_read_ahead_kb(dev, now_kb), 'restored the readahead of %s' % tag)
            m.guest_touched = True


def _record_layer(m):
    """The record, last; returns the record after the run."""
    ctx, state, desired, model = m.ctx, m.ctx.state, m.desired, m.model
    current = m.current
    stamp = _now()
    new = dict(desired, created=(current or {}).get('created') or stamp, updated=stamp)
    live_records = dict(state.live_records)
    config_records = dict(state.config_records)
    # A guest mount or readahead set in this run refreshes the live record's data path even when nothing else
    # changed.
    write_live = m.running and (m.guest_touched or not _record.same(live_records.get(model), desired))
    write_cfg = state.persistent and ((m.want_config and not _record.same(config_records.get(model), desired))
                                      or (not m.want_config and model in config_records))
    if not (write_live or write_cfg):
        after = current if m.running else state.config_records.get(model)
        return dict(after or new)
    if write_live:
        if _record.same(current, desired):
            live_records[model] = dict(current)   # only the data path is refreshed: created/updated stay
        else:
            live_records[model] = dict(new)
        live_records[model].pop('verified', None)
    if write_cfg:
        if m.want_config:
            config_records[model] = new
        else:
            config_records.pop(model, None)

    def write():
        if write_live and m.verified and desired['guest_mount']:
            live_records[model]['verified'] = m.verified
        ctx.write_records(live_records if write_live else None, config_records if write_cfg else None)
    ctx.plan.add('write the record of %s (%s)' % (model, scope(write_live, write_cfg)), write,
                 lambda: ctx.write_records(state.live_records if write_live else None,
                                           state.config_records if write_cfg else None),
                 'restored the previous record')
    return live_records[model] if write_live else new
