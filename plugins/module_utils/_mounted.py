# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The plan of ``state: mounted``: one layer per function, in the order the steps run.

checks -> guest mount point -> host volume and the model's directory -> the model pinned into the VM's export
tree -> the VM's shared device (live and persistent) -> its base mount in the guest -> the guest fstab -> the
model's bind in the guest (earlier mounts of the model taken away right before) -> a device of the model's
own from an earlier layout retired -> the record. Each layer reads the VM's read model and the facts earlier
layers found (``Mount``) and adds steps.

One virtiofs device per VM and access mode (``_export``) serves every model: a model is a bind mount on the
host (its directory, pinned) and a bind mount in the guest (from the device's base mount), so a mount after
the first needs no new device, no PCI slot and no new virtiofsd.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.aimodel.kvm.plugins.module_utils import _export
from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _juicefs
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _lock
from ansible_collections.aimodel.kvm.plugins.module_utils import _record
from ansible_collections.aimodel.kvm.plugins.module_utils import _state
from ansible_collections.aimodel.kvm.plugins.module_utils import _tuning
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


def fstab_key(record):
    """The first field of a model's guest fstab line."""
    if record.get('device'):
        return '%s/%s' % (_export.guest_base(_export.key_of_tag(record['device'])), record['tag'])
    return record['tag']


class Mount:
    """The facts the layers of one plan share. Built from the context; each layer fills in what it found, in
    order; the steps' closures read (and the guest steps update) them when they run."""

    def __init__(self, ctx):
        desired = ctx.desired
        self.ctx = ctx
        self.desired = desired
        self.model, self.entry, self.path = desired['model'], desired['tag'], desired['mount_path']
        self.device = desired['device']
        self.key = _export.key_of_tag(self.device)
        self.base = _export.guest_base(self.key)
        self.uuid = ctx.domain.uuid
        self.running = ctx.state.active
        self.current = ctx.state.records.get(self.model)
        self.host = _state.HostVolumes(ctx.host, ctx.volume['mount_root'])
        self.point = self.host.point(desired['volume'], desired['read_only'])
        self.host_state = None
        self.client = None
        self.pin_state = None
        self.repinned = False
        # The data path under which the guest mount at path is known to be readable in this run (or None).
        self.verified = None
        self.live_dev = None
        self.want_config = False
        self.guest_touched = False
        # Set by the guest layers: the bind and base mount that stay, and the IDs of dead mounts cleared.
        self.keep = None
        self.base_here = None
        self.cleared = set()

    def stale_bind(self):
        """The bind at mount_path of the model's fstab source made while the base mount was missing, or None."""
        return self.ctx.state.stale_bind_at(self.path, '%s/%s' % (self.base, self.entry))

    def model_mounts(self):
        """Every guest mount of this model: its binds from the shared device, and those of an earlier record
        (another device, or a device of its own)."""
        state = self.ctx.state
        found = state.model_mounts(self.desired)
        if self.current is not None and (self.current.get('device'), self.current.get('tag')) != (self.device, self.entry):
            found = found + [e for e in state.model_mounts(self.current) if e not in found]
        return sorted(found, key=lambda e: int(e['id']) if str(e['id']).isdigit() else 0)


def plan(ctx):
    """Add the steps that make the desired mount true; (record before, record after)."""
    current = ctx.state.records.get(ctx.desired['model'])
    # A detached record (state: detached) is no mount, but its model keeps its tag.
    current = current or ctx.state.detached_records.get(ctx.desired['model'])
    if current is not None and current.get('tag'):
        # The tag names the model's entry in the export tree: a model recorded by an earlier release (with a
        # shorter hash) keeps it.
        ctx.desired['tag'] = current['tag']
    mount = Mount(ctx)
    _check(mount)
    _mount_point(mount)
    _host_volume(mount)
    _pin(mount)
    _device(mount)
    _guest_base(mount)
    _fstab(mount)
    _guest_mount(mount)
    _retire(mount)
    return mount.current, _record_layer(mount)


def _check(m):
    ctx, state = m.ctx, m.ctx.state
    for other, rec in state.records.items():
        if other != m.model and rec.get('mount_path') == m.path:
            raise OperationFailed('%s: mount_path %s already holds model %s; model %s cannot be mounted there '
                                  '(unmount %s first or choose another mount_path)' % (ctx.where, m.path, other, m.model, other))
        if other != m.model and rec.get('tag') == m.entry:
            raise OperationFailed('%s: models %s and %s derive the same virtiofs tag %s' % (ctx.where, m.model, other, m.entry))
    if not state.shared_memory:
        raise OperationFailed('%s has no shared memory backing, which virtiofs needs: %s' % (ctx.where, SHARED_MEMORY_HINT))
    if m.running and isinstance(state.guest_error, _guest.CommandsDisabled):
        if m.desired['guest_mount'] or (m.current or {}).get('guest_mount'):
            raise OperationFailed('%s: the guest side cannot be read or changed, so model %s cannot be mounted (or '
                                  'taken out) there; nothing was changed: %s' % (ctx.where, m.model, state.guest_error))
        # guest_mount: false, and the model was never mounted in the guest by a run: the guest is left alone.
    elif m.running and state.guest_error is not None and state.guest_error.unreachable:
        raise OperationFailed('%s: the guest agent does not answer, so the guest side cannot be checked or changed '
                              '(is qemu-guest-agent running in the guest?): %s' % (ctx.where, state.guest_error))
    elif m.running and state.guest_error is not None:
        raise OperationFailed('%s: the guest side cannot be read, so it cannot be checked or changed; nothing was '
                              'changed: %s' % (ctx.where, state.guest_error))
    if m.running and m.desired['guest_mount'] and state.guest_error is None:
        try:
            ctx.agent.require(_guest.EXEC_COMMANDS, 'mounting model %s in the guest' % m.model)
        except _guest.CommandsDisabled as exc:
            raise OperationFailed('%s: nothing was changed: %s' % (ctx.where, exc))
        at = state.guest_mount_at(m.path)
        if at is not None and at not in m.model_mounts() and m.stale_bind() is None:
            raise OperationFailed('%s: %s is already a mount point in the guest (%s, %s), not of model %s; '
                                  'nothing was changed' % (ctx.where, m.path, at['source'], at['fstype'], m.model))
    if m.running and len(state.devices_with_tag(m.device)) > 1:
        raise OperationFailed('%s has %d live devices with tag %s; restart the VM (shutdown and start) to get one'
                              % (ctx.where, len(state.devices_with_tag(m.device)), m.device))


def _mount_point(m):
    """The mount point first: a path the guest cannot use (a file, a read-only place) fails before anything
    changes, on the host (its volume mount) or in the VM (a device)."""
    if m.running and m.desired['guest_mount'] and not any(e['target'] == m.path for e in m.model_mounts()):
        agent, path, created = m.ctx.agent, m.path, []
        m.ctx.plan.add_guest('create the mount point %s in the guest' % path,
                             lambda: created.extend(agent.make_dirs(path)),
                             lambda: agent.remove_dirs(created), 'removed the directories it created in the guest')


SLOW_VOLUME = ('volume %s at %s does not answer statfs within %ss: it is slow or hung, which cannot be told apart, so '
               'it is not remounted (the models of other VMs are read from it); nothing was changed. Check its client '
               '(log: %s) and the metadata engine, then run again')


def _host_volume(m):
    """The host volume (mounted, or remounted when its client died), proven to be the volume the task names, and
    the model's directory on it."""
    desired, volume, add = m.desired, m.ctx.volume, m.ctx.plan.add
    m.host_state = m.host.status(desired['volume'], desired['read_only'])
    m.client = m.ctx.host.find_client(volume['client_path'])
    if m.host_state == 'foreign':
        raise OperationFailed('%s is in use by something else (%s), not by volume %s'
                              % (m.point, m.ctx.host.describe(m.point), desired['volume']))
    if m.host_state == 'slow':
        raise OperationFailed(SLOW_VOLUME % (desired['volume'], m.point, _juicefs.STATFS_TIMEOUT,
                                             _juicefs.log_path(desired['volume'], desired['read_only'])))
    desired['volume_uuid'] = _identity(m)
    if m.host_state == 'dead':
        add('remount the dead host volume %s at %s' % (desired['volume'], m.point),
            lambda: mount_volume(m.ctx, m.client, clear_dead=True))
    elif m.host_state == 'absent':
        add('mount volume %s %s on the host at %s'
            % (desired['volume'], 'read-only' if desired['read_only'] else 'read-write', m.point),
            lambda: mount_volume(m.ctx, m.client),
            undo_text='host volume %s stays mounted at %s (shared by all VMs of this host)' % (desired['volume'], m.point))
    if m.host_state == 'mounted':
        check_source(m.ctx.host, m.point, desired)
    if m.ctx.params['warmup']:
        add('warm up %s in the host cache' % desired['source_path'],
            lambda: m.ctx.host.warmup(m.client, '%s/%s' % (m.point, desired['source_path'])))


def _identity(m):
    """The UUID of the volume the task names. The metadata engine is asked, unless this model's record already
    holds the answer for this very URL and the host mount is that volume. A host mount of another volume of the
    same name is refused: serving from it would mount another repository's model."""
    desired, volume = m.desired, m.ctx.volume
    mounted = m.host.identity(desired['volume'], desired['read_only']) if m.host_state == 'mounted' else None
    rec = m.current or {}
    if rec.get('volume_uuid') and rec.get('meta_url') == volume['meta_url'] and mounted \
            and mounted[1] == rec['volume_uuid']:
        return rec['volume_uuid']
    try:
        name, uuid = m.ctx.host.engine_identity(m.client, volume['meta_url'], volume['password'])
    except _juicefs.VolumeError as exc:
        raise OperationFailed(str(exc), field='volume.meta_url')
    if name != desired['volume']:
        raise OperationFailed('volume.name: the metadata engine at %s holds volume %s, not %s; nothing was changed'
                              % (volume['meta_url'], name, desired['volume']), field='volume.name')
    if m.host_state == 'mounted' and (mounted is None or mounted[1] != uuid):
        raise OperationFailed(
            'volume.meta_url: %s is mounted at %s, but it is not the volume %s of %s (UUID %s): %s. Two volumes '
            'share the name %s; nothing was changed. Give this one another volume.mount_root, or unmount the other'
            % (desired['volume'], m.point, desired['volume'], volume['meta_url'], uuid,
               'its UUID is %s' % mounted[1] if mounted else 'its identity cannot be read',
               desired['volume']), field='volume.meta_url')
    return uuid


def mount_volume(ctx, client, clear_dead=False):
    """Mount the host volume under the volume's lock (another run may have mounted or repaired it meanwhile); what
    is mounted must be the volume of the desired UUID."""
    desired, volume, host = ctx.desired, ctx.volume, ctx.host
    with _lock.Lock('volume-%s-%s' % (desired['volume'], 'ro' if desired['read_only'] else 'rw'),
                    ctx.params['lock_timeout'], 'volume %s' % desired['volume']):
        point = _juicefs.mountpoint(desired['volume'], desired['read_only'], volume['mount_root'])
        current = host.status(point, desired['volume'])
        if current == 'slow':
            raise OperationFailed(SLOW_VOLUME % (desired['volume'], point, _juicefs.STATFS_TIMEOUT,
                                                 _juicefs.log_path(desired['volume'], desired['read_only'])))
        if current != 'mounted':
            if current == 'dead' and clear_dead:
                host.lazy_unmount(point)
            host.mount(client, desired['volume'], volume['meta_url'], volume['password'], desired['read_only'],
                       root=volume['mount_root'], cache_dir=volume['cache_dir'], cache_size=volume['cache_size'])
        found = host.mounted_identity(point)
        if found is None or found[1] != desired['volume_uuid']:
            raise OperationFailed('volume.meta_url: the volume mounted at %s is %s, not the volume %s (UUID %s)'
                                  % (point, 'UUID %s' % found[1] if found else 'of an identity that cannot be read',
                                     desired['volume'], desired['volume_uuid']), field='volume.meta_url')


def check_source(host, point, desired):
    """The model's directory must exist and be reachable without a symlink (see ``_export.open_beneath``)."""
    try:
        found = host.check_source(point, desired['source_path'])
    except _juicefs.VolumeError as exc:
        raise OperationFailed('source_path: %s' % exc, field='source_path')
    if found is None:
        raise OperationFailed('source_path: model %s not found at %s in volume %s'
                              % (desired['model'], desired['source_path'], desired['volume']), field='source_path')


def _pin(m):
    """The model's directory bound into the VM's export tree, unless exactly that directory of the mounted volume
    is bound there and answers. A new bind (the volume came back, the directory changed) makes the guest bind
    the model again."""
    ctx, desired, host = m.ctx, m.desired, m.ctx.host
    if m.host_state == 'mounted':
        m.pin_state = host.entry_state(m.uuid, m.key, m.entry, m.point, desired['source_path'])
    else:
        m.pin_state = 'missing' if host.entry_id(m.uuid, m.key, m.entry) is None else 'stale'
    if m.pin_state == 'pinned':
        return
    m.repinned = True
    was = m.pin_state

    def pin():
        if m.host_state != 'mounted':
            check_source(host, m.point, desired)
        try:
            host.pin(m.uuid, m.key, m.entry, m.point, desired['source_path'], desired['read_only'])
        except _juicefs.VolumeError as exc:
            raise OperationFailed('source_path: %s' % exc, field='source_path')
    first = not [mdl for mdl in ctx.state.records_on(m.device) if mdl != m.model]

    def unpin():
        host.unpin(m.uuid, m.key, m.entry)
        if first:
            host.remove_view(m.uuid, m.key)   # made by this pin: no other model is on the device
    add_undo = unpin if was == 'missing' else None
    ctx.plan.add('%s %s of volume %s into the export tree of the VM (%s)'
                 % ('pin' if was == 'missing' else 'pin again (%s)' % was, desired['source_path'], desired['volume'],
                    _export.entry_path(m.uuid, m.key, m.entry)),
                 pin, add_undo, 'took %s out of the export tree again' % m.entry if add_undo else None)


def _device(m):
    """The VM's shared device of this access mode, live and persistent: kept, attached, or (its virtiofsd died
    and no guest mount uses it) replaced."""
    ctx, state, desired, device = m.ctx, m.ctx.state, m.desired, m.device
    add = ctx.plan.add
    m.want_config = state.persistent and (desired['persist'] or not m.running)
    view = _export.view_dir(m.uuid, m.key)
    m.live_dev = live_dev = state.device(device) if m.running else None
    cfg_dev = state.device(device, config=True) if state.persistent else None
    for dev, where in ((live_dev, 'live'), (cfg_dev, 'persistent')):
        if dev is not None and dev['source'] != view:
            raise OperationFailed('%s: the %s device %s serves %s, not the export tree %s; nothing was changed'
                                  % (ctx.where, where, device, dev['source'], view))
    backend_dead = live_dev is not None and state.backend_alive(device) is False
    if backend_dead and state.guest_mounts_of(device):
        raise OperationFailed(BACKEND_DEAD % (ctx.where, device, ', '.join(e['target'] for e in state.guest_mounts_of(device))))
    if backend_dead and state.guest_mounts is None:
        raise OperationFailed('%s: the virtiofsd process of device %s is gone, and the guest may still mount it (its mount '
                              'table cannot be read): a detach would hang; nothing was changed. Restart the VM (shutdown '
                              'and start) and run again' % (ctx.where, device))
    device_xml = _libvirt.filesystem_xml(view, device, desired['cache'])
    if backend_dead:
        add('detach device %s, whose virtiofsd is gone (live)' % device, lambda: ctx.detach(device_xml, device, True, False))
    attach_live = m.running and (live_dev is None or backend_dead)
    attach_cfg = m.want_config and cfg_dev is None
    if attach_live and not backend_dead and _libvirt.free_hotplug_slots(state.live_xml) == 0:
        # A device whose virtiofsd died is detached first and frees its slot; a first device needs one free.
        raise OperationFailed('%s has no free hot-plug slot for the shared device %s; nothing was changed: %s'
                              % (ctx.where, device, _libvirt.SLOT_HINT))
    if attach_live or attach_cfg:
        add('attach the shared virtiofs device %s for %s (%s)' % (device, view, scope(attach_live, attach_cfg)),
            lambda: attach(ctx, device_xml, device, attach_live, attach_cfg),
            lambda: detach_attached(ctx, device_xml, device, attach_live, attach_cfg),
            'detached device %s (%s)' % (device, scope(attach_live, attach_cfg)), unsure=True)


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
        if live and 'No more available PCI slots' in str(exc):
            raise OperationFailed('the VM has no free hot-plug slot for device %s: %s. libvirt said: %s'
                                  % (tag, _libvirt.SLOT_HINT, exc))
        raise
    if live and not any(d['tag'] == tag for d in _libvirt.filesystems(ctx.domain.xml())):
        raise OperationFailed('device %s is not in the live XML after attaching it' % tag)
    if config and not any(d['tag'] == tag for d in _libvirt.filesystems(ctx.domain.xml(config=True))):
        raise OperationFailed('device %s is not in the persistent XML after attaching it' % tag)


def detach_attached(ctx, device_xml, tag, live, config):
    """The undo of ``attach``, also after it failed half-way (attached live but not persistently, or attached and
    not confirmed): detach the device where it is now."""
    live = live and any(d['tag'] == tag for d in _libvirt.filesystems(ctx.domain.xml()))
    config = config and any(d['tag'] == tag for d in _libvirt.filesystems(ctx.domain.xml(config=True)))
    if not (live or config):
        return False
    ctx.detach(device_xml, tag, live, config)
    return True


def _guest_facts(m):
    """What of the guest side can stay: the model's bind at mount_path (``m.keep``) and the device's base mount
    (``m.base_here``). A mount is kept when it is of the live device, of the right access mode, not made stale by
    a new pin, and readable: proven before under the same data path, else probed (one guest process for the
    bind and the base). Every guest mount of a device that is gone, or whose base mount cannot be read (the
    device was attached again underneath), is dead: all of them are cleared, lazily, before anything else."""
    ctx, state, desired, device, path = m.ctx, m.ctx.state, m.desired, m.device, m.path
    mine = [e for e in state.model_mounts(desired) if e['target'] == path] if desired['guest_mount'] else []
    keep = mine[-1] if mine else None
    ro_opt = 'ro' if desired['read_only'] else 'rw'
    if keep is not None and (m.repinned or ro_opt not in keep['options'] or m.live_dev is None):
        keep = None
    base_here = state.base_mount(device) if m.live_dev is not None else None
    probe = []
    if keep is not None:
        now = state.data_path(device, ctx.host, m.key, m.entry, keep['id'])
        if now is not None and (m.current or {}).get('verified') == now:
            # Proven readable before, and neither its virtiofsd, nor its bind on the host, nor the guest mount
            # has changed since: not probed again (no guest process on a no-op).
            m.verified = now
        else:
            probe.append(path)
    if base_here is not None and desired['guest_mount'] and (probe or keep is None):
        probe.append(base_here['target'])
    answered = ctx.agent.accessible_many(probe) if probe else {}
    if keep is not None and path in answered:
        if answered[path]:
            m.verified = state.data_path(device, ctx.host, m.key, m.entry, keep['id'])
        else:
            keep = None
    dead = state.guest_mounts_of(device) if m.live_dev is None else []
    if base_here is not None and answered.get(base_here['target']) is False:
        dead = state.guest_mounts_of(device)
    if dead:
        for entry in reversed(dead):
            ctx.plan.add_guest('unmount the dead %s from %s in the guest (its device is gone or was attached again)'
                               % (device, entry['target']), lambda target=entry['target']: ctx.guest_umount(target, True))
        m.cleared = set(e['id'] for e in dead)
        base_here = keep = None
        m.guest_touched = True
    m.keep, m.base_here = keep, base_here


def _guest_base(m):
    """The shared device mounted once in the guest at its base (nosuid, nodev), and its readahead (the guest
    kernel's default of 128 KiB reads the weights slower)."""
    if not m.running:
        return
    _guest_facts(m)
    if not m.desired['guest_mount']:
        return
    ctx, state, agent, device, base = m.ctx, m.ctx.state, m.ctx.agent, m.device, m.base
    read_only = m.key.startswith('ro')
    read_ahead = _tuning.device_read_ahead(state.records, device, m.desired)
    here = m.base_here
    if here is not None and ('ro' in here['options']) != read_only:
        ctx.plan.add_guest('unmount the base mount %s of %s in the guest (wrong access mode)' % (base, device),
                           lambda: ctx.guest_umount(base, True))
        here = None
    if here is None:
        made, created = {}, []

        def mount_base():
            created.extend(agent.make_dirs(base))
            agent.mount_virtiofs(device, base, read_only, ctx.params['device_timeout'], _guest.MODEL_OPTIONS)
            made.update(_confirm_guest_mount(ctx, device, base))

        def unmount_base():
            taken = take_back_guest_mount(ctx, device, base)
            agent.remove_dirs(created)
            return taken
        ctx.plan.add_guest('mount the shared device %s at %s in the guest (%s)' % (device, base, 'ro' if read_only else 'rw'),
                           mount_base, unmount_base, 'unmounted %s from %s in the guest' % (device, base), unsure=True)
        if read_ahead:
            ctx.plan.add_guest('set the readahead of %s in the guest to %d KiB' % (device, read_ahead),
                               lambda: agent.set_read_ahead_kb(made['dev'], read_ahead))
        m.guest_touched = True
    elif read_ahead:
        # Read on every run (one small sysfs file, once per run): it is lost with every new base mount, can be changed by hand,
        # and vm_model_mount_info reports it.
        dev = here['dev']
        now_kb = ctx.state.read_once(('read_ahead_kb', dev), lambda: agent.read_ahead_kb(dev))
        if now_kb is not None and now_kb != read_ahead:
            ctx.plan.add_guest('set the readahead of %s in the guest to %d KiB (was %d KiB)' % (device, read_ahead, now_kb),
                               lambda: agent.set_read_ahead_kb(dev, read_ahead),
                               lambda: agent.set_read_ahead_kb(dev, now_kb), 'restored the readahead of %s' % device)
            m.guest_touched = True


def _confirm_guest_mount(ctx, device, target):
    """The guest's new mount of the device at target, from its mount table. A step that mounts is unsure: a mount
    it made but cannot confirm is taken back by the rollback (``take_back_guest_mount``)."""
    found = [e for e in ctx.agent.mounts() if e['source'] == device and e['target'] == target]
    if not found:
        raise OperationFailed('the guest mounted %s at %s but its mount table does not show it' % (device, target))
    return found[-1]


def take_back_guest_mount(ctx, device, target):
    """Unmount (lazily) the guest's mount of the device at target, when the guest shows one; False when there is
    none. A mount table that cannot be read is no proof of absence: then it is unmounted all the same."""
    try:
        shown = any(e['source'] == device and e['target'] == target for e in ctx.agent.mounts())
    except _guest.GuestError:
        shown = True
    if shown:
        ctx.guest_umount(target, True)
    return shown


def fstab_for(text, state, desired, current):
    """The guest fstab with the desired model's lines (its device's base line first, then its bind), without
    the lines of an earlier record of it; the base line goes with the last persisted model of its device."""
    # A line of the model's own device (an earlier layout) never stays: its first field is the bare tag.
    new = _guest.fstab_without(text or '', desired['tag'])
    if current is not None and fstab_key(current) != fstab_key(desired):
        new = _guest.fstab_without(new, fstab_key(current))
        if current.get('device') and current['device'] != desired['device']:
            new = without_unused_base(new, state, current['device'], desired['model'])
    device = desired['device']
    base = _export.guest_base(_export.key_of_tag(device))
    if desired['guest_mount'] and desired['persist']:
        new = _guest.fstab_before(new, device, _guest.fstab_base_line(device, base, device.split('-')[1] == 'ro'),
                                  base + '/')
        new = _guest.fstab_with(new, fstab_key(desired), _guest.fstab_bind_line(
            fstab_key(desired), desired['mount_path'], base, desired['read_only']))
    else:
        new = _guest.fstab_without(new, fstab_key(desired))
        new = without_unused_base(new, state, device, desired['model'])
    return new


def without_unused_base(text, state, device, leaving):
    persisted = [m for m, r in state.records.items()
                 if m != leaving and r.get('device') == device and r.get('persist') and r.get('guest_mount')]
    return text if persisted else _guest.fstab_without(text, device)


def _fstab(m):
    """The fstab lines before the guest mount: written while the guest is still discovering a device just
    attached, they cost no wall time; then the unit that sets the device's readahead after a reboot, when the
    fstab mounts it (``_tuning``). A stopped VM's guest part waits (pending)."""
    if not m.running:
        m.ctx.plan.pending = True
        return
    old_fstab = m.ctx.state.fstab or ''
    new_fstab = fstab_for(old_fstab, m.ctx.state, m.desired, m.current)
    if new_fstab != old_fstab:
        agent = m.ctx.agent
        m.ctx.plan.add_guest('write the fstab lines of %s in the guest' % m.model,
                             lambda: agent.write_file(_guest.FSTAB, new_fstab),
                             lambda: restore_fstab(agent, old_fstab), 'restored the guest fstab', unsure=True)
    _tuning.plan_unit(m.ctx, m.device, new_fstab, _tuning.device_read_ahead(m.ctx.state.records, m.device, m.desired))
    if m.current is not None and m.current.get('device') and m.current['device'] != m.device:
        # The model leaves another device: that device's unit follows its fstab line and its other models.
        rest = dict((k, r) for k, r in m.ctx.state.records.items() if k != m.model)
        _tuning.plan_unit(m.ctx, m.current['device'], new_fstab, _tuning.device_read_ahead(rest, m.current['device']))


def restore_fstab(agent, old_fstab):
    """Write the fstab back as it was, unless it is (False: nothing to undo)."""
    if (agent.read_file(_guest.FSTAB) or '') == old_fstab:
        return False
    agent.write_file(_guest.FSTAB, old_fstab)
    return True


def _guest_mount(m):
    """The model's bind at mount_path; every other mount of the model (another path, an earlier device, a bind
    of an earlier pin, a broken one) is unmounted right before, so a model that stays is unreadable only for
    the time of its own remount."""
    if not m.running:
        return
    ctx, desired, path, agent = m.ctx, m.desired, m.path, m.ctx.agent
    keep = m.keep
    for entry in reversed(m.model_mounts()):
        if entry is keep or entry['id'] in m.cleared:
            continue
        ctx.plan.add_guest('unmount %s from %s in the guest (%s)' % (entry['source'], entry['target'], _why(m, entry)),
                           lambda target=entry['target']: ctx.guest_umount(target, True))
        m.guest_touched = True
    if desired['guest_mount'] and keep is None:
        source = '%s/%s' % (m.base, m.entry)
        if m.stale_bind() is not None:
            ctx.plan.add_guest('unmount the empty bind at %s in the guest (the fstab made it at boot while the base '
                               'mount %s was missing)' % (path, m.base), lambda: ctx.guest_umount(path, True))
        ro_opt = 'ro' if desired['read_only'] else 'rw'

        def bind():
            agent.bind_mount(source, path, desired['read_only'])
            found = _confirm_guest_mount(ctx, m.device, path)
            m.verified = _state.data_path(ctx.domain, _libvirt.filesystems(ctx.domain.xml()), m.device, ctx.host,
                                          m.key, m.entry, found['id'])
        ctx.plan.add_guest('bind %s at %s in the guest (%s)' % (source, path, ro_opt), bind,
                           lambda: take_back_guest_mount(ctx, m.device, path), 'unmounted %s from the guest' % path, unsure=True)
        m.guest_touched = True


def _why(m, entry):
    if entry['source'] != m.device:
        return 'the model moves to the shared device %s' % m.device
    if entry['target'] != m.path or not m.desired['guest_mount']:
        return 'converging to the new arguments'
    if m.repinned:
        return 'its directory was pinned again on the host'
    return 'broken or of the wrong access mode'


def _retire(m):
    """What an earlier record of the model used and nothing uses any more: a device of the model's own (an earlier
    layout), or its entry in another shared device (another access or cache mode), with that device when it was
    the last model on it."""
    ctx, state, current = m.ctx, m.ctx.state, m.current
    own = [(state.device(m.entry) if m.running else None), (state.device(m.entry, config=True) if state.persistent else None)]
    if current is not None and not current.get('device') and any(own):
        xml = _libvirt.filesystem_xml((own[0] or own[1])['source'], m.entry)
        live, cfg = own[0] is not None, own[1] is not None
        ctx.plan.add('detach the model\'s own device %s (%s): the shared device %s serves it now'
                     % (m.entry, scope(live, cfg), m.device), lambda: ctx.detach(xml, m.entry, live, cfg))
    if current is not None and current.get('device') and current['device'] != m.device:
        old_key = _export.key_of_tag(current['device'])
        ctx.plan.add('take %s out of the export tree %s' % (m.entry, _export.view_dir(m.uuid, old_key)),
                     lambda: ctx.host.unpin(m.uuid, old_key, m.entry))
        drop_shared(ctx, current['device'], m.model)


def drop_shared(ctx, device, leaving):
    """Steps that take a shared device away once ``leaving`` was its last model: its base mount in the guest,
    the device (live and persistent) and its export directory on the host. False when other models use it."""
    state = ctx.state
    if [mdl for mdl in state.records_on(device) if mdl != leaving]:
        return False
    key = _export.key_of_tag(device)
    uuid = ctx.domain.uuid
    live = state.device(device) if state.active else None
    cfg = state.device(device, config=True) if state.persistent else None
    if state.active:
        for entry in reversed(state.guest_mounts_of(device)):
            if entry.get('root', '/') == '/':
                ctx.plan.add_guest('unmount the shared device %s from %s in the guest' % (device, entry['target']),
                                   lambda target=entry['target']: ctx.guest_umount(target, ctx.params['force']))
    if live is not None or cfg is not None:
        xml = _libvirt.filesystem_xml((live or cfg)['source'], device)
        wait = ' and wait until the guest released it' if live else ''
        ctx.plan.add('detach the shared device %s (%s)%s' % (device, scope(live is not None, cfg is not None), wait),
                     lambda: ctx.detach(xml, device, live is not None, cfg is not None))
    ctx.plan.add('remove the export directory %s' % _export.view_dir(uuid, key), lambda: ctx.host.remove_view(uuid, key))
    return True


def _record_layer(m):
    """The record, last; returns the record after the run."""
    ctx, state, desired, model = m.ctx, m.ctx.state, m.desired, m.model
    current = m.current
    stamp = _record.timestamp()
    new = dict(desired, created=(current or {}).get('created') or stamp, updated=stamp)
    live_records = dict(state.live_records)
    config_records = dict(state.config_records)
    # A guest mount or readahead set in this run refreshes the live record's data path even when nothing else
    # changed.
    write_live = m.running and (m.guest_touched or m.repinned or not _record.same(live_records.get(model), desired))
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

    written = []

    def write():
        if write_live and m.verified and desired['guest_mount']:
            live_records[model]['verified'] = m.verified
        if write_live:
            ctx.write_records(live_records, None)
            written.append('live')
        if write_cfg:
            ctx.write_records(None, config_records)
            written.append('config')

    def restore():
        # Only the sides written: the live record may be written while the persistent one failed.
        if not written:
            return False
        ctx.write_records(state.live_records if 'live' in written else None,
                          state.config_records if 'config' in written else None)
    ctx.plan.add('write the record of %s (%s)' % (model, scope(write_live, write_cfg)), write, restore,
                 'restored the previous record', unsure=True)
    return live_records[model] if write_live else new
