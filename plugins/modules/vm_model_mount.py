#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r'''
---
module: vm_model_mount
short_description: Mount an AI model from a model repository volume into a libvirt VM, or unmount it
version_added: 0.1.0
description:
  - Puts one model (a directory of a model repository volume) into one running or stopped KVM virtual machine,
    read-only by default, at a path inside the guest, and takes it out again.
  - On the hypervisor the volume is mounted once per host and access mode under O(volume.mount_root); the model's
    directory is hot-plugged into the VM as a virtiofs device (live and persistent in one call); the guest mounts it
    through the QEMU guest agent (an argument vector, never a shell) and keeps it in its C(/etc/fstab) with C(nofail);
    the mount is recorded in the domain's metadata, so the record follows the VM and dies with it.
  - Safe to re-run. Any failure after a change rolls back what the run did and says what was rolled back.
  - One operation per VM at a time on a hypervisor (a lock); the VM is looked up again under the lock.
author:
  - aimodel.kvm developers (@aimodel)
extends_documentation_fragment:
  - aimodel.kvm.connection
  - aimodel.kvm.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
    description: When run twice in a row with the same arguments, the second run reports no change.
options:
  vm:
    description:
      - Name or UUID of the libvirt domain.
    type: str
    required: true
  model:
    description:
      - Logical name of the model. It identifies the mount within the VM (one mount per model per VM) and derives
        the virtiofs tag (C(aim-...), at most 36 bytes).
      - Letters, digits, V(.), V(_) and V(-), starting with a letter or digit, at most 128 characters.
    type: str
    required: true
  source_path:
    description:
      - Directory of the model inside the volume. V(models/x) and V(/models/x) both mean that directory under the
        volume's root. It must exist and stay inside the volume (no V(..), no symlink out of it).
      - Required with O(state=mounted).
    type: str
  volume:
    description:
      - The model repository volume that holds the model. Required with O(state=mounted); with O(state=absent)
        everything is read from the record.
    type: dict
    suboptions:
      name:
        description:
          - Name of the volume, as it was formatted. It names the host mount point and is checked against the
            mounted volume.
        type: str
        required: true
      meta_url:
        description:
          - Metadata engine URL of the volume, for example V(redis://host:6379/1) or V(sqlite3:///var/lib/x/meta.db).
          - A password inside it is taken out and passed to the client through its environment only.
          - If not set, the environment variable E(AIMODEL_META_URL) is used.
        type: str
      meta_password:
        description:
          - Password of the metadata engine. Passed to the client only through its environment, never on a command
            line, never stored, never logged.
          - If not set, the environment variable E(AIMODEL_META_PASSWORD) is used.
        type: str
      mount_root:
        description:
          - Directory under which the volume is mounted on the host, as C(<mount_root>/<name>/<ro|rw>).
        type: path
        default: /var/lib/aimodel/volumes
      cache_dir:
        description:
          - Local cache directory of the client on the host. Default is the client's own.
        type: path
      cache_size:
        description:
          - Local cache size in MiB. Default is the client's own.
        type: int
      client_path:
        description:
          - Path of the client binary on the host. Default is found on E(PATH) and in C(/usr/local/bin).
        type: path
  mount_path:
    description:
      - Absolute path inside the guest. Default is C(/mnt/models/<model>).
      - It is normalized (V(/mnt/models/./a), V(/mnt/models//a/) and V(/mnt/models/a) are one path) and the normalized
        value is what is compared and stored. Relative paths, V(..), white space, control characters, system
        directories themselves (V(/), V(/etc), V(/usr), V(/var), V(/tmp), ...) and paths below V(/proc), V(/sys)
        and V(/dev) are refused.
    type: str
  read_only:
    description:
      - Mount read-only. Enforced on the host (the volume is mounted read-only) and in the guest (C(-o ro)),
        since libvirt does not support read-only virtiofs devices.
    type: bool
    default: true
  state:
    description:
      - V(mounted) mounts the model (or converges an existing mount of the same model to the new arguments).
      - V(absent) unmounts it in the guest, detaches the device, removes the fstab line and the record.
        A VM that does not exist is nothing to do.
    type: str
    choices: [mounted, absent]
    default: mounted
  persist:
    description:
      - Keep the mount across guest reboots and VM restarts (persistent domain configuration and a guest fstab line
        with C(nofail)). V(false) changes the running VM only.
    type: bool
    default: true
  guest_mount:
    description:
      - Mount the device inside the guest. V(false) only attaches the device (and records it).
    type: bool
    default: true
  force:
    description:
      - With O(state=absent), unmount a busy guest mount lazily instead of failing.
    type: bool
    default: false
  warmup:
    description:
      - Prefetch the model into the host's cache before attaching it.
    type: bool
    default: false
  cache:
    description:
      - virtiofs cache mode of the device. V(never) is refused, because model loaders map the weights into memory
        (mmap) and mmap fails on a virtiofs mount without cache.
    type: str
    choices: [auto, always, never]
    default: auto
  read_ahead_kb:
    description:
      - The guest's readahead of the mount, in KiB, set in the guest's sysfs (C(/sys/class/bdi/<dev>/read_ahead_kb))
        after the mount. The guest kernel's default, 128 KiB, reads the weights about a third slower (see
        C(docs/performance.md)).
      - Checked on every run and set again when it differs; a guest reboot mounts the model again from the fstab
        with the kernel's default, which M(aimodel.kvm.vm_model_mount_info) reports as V(read_ahead_differs) until
        the next run.
      - V(0) leaves the guest's readahead alone.
    type: int
    default: 1024
  lock_timeout:
    description:
      - Seconds to wait for another operation on the same VM to finish.
    type: int
    default: 120
  agent_timeout:
    description:
      - Seconds to wait for one guest agent call.
    type: int
    default: 30
  device_timeout:
    description:
      - Seconds to wait for the guest to discover a new device (before mounting it) and to release a detached one.
    type: int
    default: 60
notes:
  - The VM must have shared memory backing (C(<memoryBacking><source type='memfd'/><access mode='shared'/>)); adding
    it needs a VM restart.
  - The guest needs qemu-guest-agent and the virtiofs kernel module.
  - A run that finds the model in place reads both XMLs, the record, the guest's mount table, fstab and the mount's
    readahead, and changes nothing. It probes the guest mount (a C(statfs) in the guest) only when the mount's data
    path changed since the mount was proven readable (the device attached again, the host volume mounted again, the
    VM restarted, the guest rebooted); the live record keeps that data path (its virtiofsd, host mount and guest
    mount). M(aimodel.kvm.vm_model_mount_info) probes every mount.
  - Every failure names the VM and model and leaves nothing half-done. Bad input fails before anything is touched,
    with the option's name first, for example C(mount_path - must not be the system directory /etc). The failures a
    run can meet, and what to do, follow.
  - C(VM ... is not defined on this host) - the task runs on another hypervisor than the VM's (O(state=absent) is ok).
  - C(has no shared memory backing) - add the memory backing above and restart the VM.
  - C(the guest agent does not answer) - start qemu-guest-agent in the guest; nothing was changed.
  - C(mount_path ... already holds model X) or C(... is already a mount point in the guest) - another model or file
    system is there; unmount it or choose another O(mount_path).
  - C(model X not found at Y in volume Z) or C(source_path ... leaves the volume) - fix O(source_path).
  - C(volume.meta_url - the metadata engine at host:port does not accept connections) - the metadata engine is down
    or unreachable from the hypervisor.
  - C(... failed ... Rolled back - ...) - a step failed after changes; the message lists what was undone (and what is
    kept on purpose, the shared host volume mount).
  - C(another operation on VM ... held its lock ... (lock_timeout)) - a concurrent run; raise O(lock_timeout) or
    retry.
  - C(unmounting ... failed ... the mount is busy) - a guest process uses the model; stop it or use O(force=true).
  - C(the virtiofsd process of device ... is gone) or C(libvirt refused the hot-plug although the VM has shared
    memory backing) - only a restart of the VM (shutdown and start) clears these; run again afterwards.
seealso:
  - module: aimodel.kvm.vm_model_mount_info
'''

EXAMPLES = r'''
- name: Mount a model read-only into a VM
  aimodel.kvm.vm_model_mount:
    vm: inference-01
    model: all-minilm-l6-v2
    source_path: models/all-minilm-l6-v2
    volume:
      name: models
      meta_url: redis://10.0.0.5:6379/1
      meta_password: "{{ vault_models_meta_password }}"

- name: Set the connection and volume once for several tasks
  module_defaults:
    group/aimodel.kvm.vm_model_mount:
      uri: qemu:///system
      volume:
        name: models
        meta_url: sqlite3:///var/lib/aimodel/models.db
  block:
    - name: Mount at a chosen path, warmed up in the host cache first
      aimodel.kvm.vm_model_mount:
        vm: inference-02
        model: llama-3-8b
        source_path: /models/llama-3-8b
        mount_path: /srv/models/llama
        warmup: true

    - name: Unmount it (everything else comes from the record)
      aimodel.kvm.vm_model_mount:
        vm: inference-02
        model: llama-3-8b
        state: absent
'''

RETURN = r'''
mount:
  description:
    - The mount as recorded after the run (before it, for O(state=absent)), with its status.
  returned: always
  type: dict
  contains:
    vm:
      description: Name of the VM.
      type: str
      sample: inference-01
    model:
      description: Logical model name.
      type: str
      sample: all-minilm-l6-v2
    volume:
      description: Volume name.
      type: str
      sample: models
    source_path:
      description: Normalized directory of the model inside the volume.
      type: str
      sample: models/all-minilm-l6-v2
    mount_path:
      description: Normalized path inside the guest.
      type: str
      sample: /mnt/models/all-minilm-l6-v2
    tag:
      description: virtiofs tag of the device.
      type: str
      sample: aim-all-minilm-l6-v2-d2ab480c
    read_only:
      description: Whether the mount is read-only.
      type: bool
      sample: true
    persist:
      description: Whether the mount survives reboots.
      type: bool
      sample: true
    guest_mount:
      description: Whether the device is mounted inside the guest.
      type: bool
      sample: true
    cache:
      description: virtiofs cache mode.
      type: str
      sample: auto
    read_ahead_kb:
      description: The guest's readahead of the mount in KiB (V(0) when left to the guest).
      type: int
      sample: 1024
    created:
      description: When the mount was first recorded (UTC, ISO 8601).
      type: str
      sample: '2026-11-23T22:40:00Z'
    updated:
      description: When the record last changed (UTC, ISO 8601).
      type: str
      sample: '2026-11-23T22:40:00Z'
    status:
      description:
        - V(mounted) when the device is attached and mounted in the guest; V(pending) when the VM is stopped and the
          guest part completes once it runs; V(absent) after an unmount.
      type: str
      sample: mounted
actions:
  description: What the run did, or would do in check mode, in order.
  returned: always
  type: list
  elements: str
  sample:
    - mount volume models read-only on the host at /var/lib/aimodel/volumes/models/ro
    - attach virtiofs device aim-all-minilm-l6-v2-d2ab480c (live and persistent)
    - mount aim-all-minilm-l6-v2-d2ab480c at /mnt/models/all-minilm-l6-v2 in the guest (ro)
    - add the fstab line of aim-all-minilm-l6-v2-d2ab480c in the guest
    - write the record of all-minilm-l6-v2 (live and persistent)
diff:
  description: The record before and after, in diff mode.
  returned: when diff mode is on
  type: dict
  sample:
    before: {}
    after:
      model: all-minilm-l6-v2
      mount_path: /mnt/models/all-minilm-l6-v2
'''

import datetime
import os
import traceback

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _juicefs
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _lock
from ansible_collections.aimodel.kvm.plugins.module_utils import _record
from ansible_collections.aimodel.kvm.plugins.module_utils import _spec
from ansible_collections.aimodel.kvm.plugins.module_utils._state import VmState

SHARED_MEMORY_HINT = (
    "add <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking> to the domain XML "
    "(virsh edit) and restart the VM (a shutdown and start, not a reboot): virtiofs needs guest memory shared "
    "with virtiofsd")


BACKEND_DEAD = (
    '%s: the virtiofsd process of device %s is gone while the guest still mounts it at %s. Any access to that mount, '
    'even an unmount, hangs in the guest for good and keeps the device from being detached, so nothing was changed. '
    'Restart the VM (shutdown and start; the persistent configuration brings the device back with a new virtiofsd) '
    'and run again')


class MountFailed(Exception):
    pass


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


# The guest's readahead of a mount is a sysfs value in KiB; beyond 64 MiB it only costs guest memory.
MAX_READ_AHEAD_KB = 65536


def argument_spec():
    return dict(
        uri=_libvirt.uri_option(),
        vm=dict(type='str', required=True),
        model=dict(type='str', required=True),
        source_path=dict(type='str'),
        volume=dict(type='dict', options=dict(
            name=dict(type='str', required=True),
            meta_url=dict(type='str', no_log=True, fallback=(env_fallback, ['AIMODEL_META_URL'])),
            meta_password=dict(type='str', no_log=True, fallback=(env_fallback, ['AIMODEL_META_PASSWORD'])),
            mount_root=dict(type='path', default=_juicefs.DEFAULT_MOUNT_ROOT),
            cache_dir=dict(type='path'),
            cache_size=dict(type='int'),
            client_path=dict(type='path'),
        )),
        mount_path=dict(type='str'),
        read_only=dict(type='bool', default=True),
        state=dict(type='str', default='mounted', choices=['mounted', 'absent']),
        persist=dict(type='bool', default=True),
        guest_mount=dict(type='bool', default=True),
        force=dict(type='bool', default=False),
        warmup=dict(type='bool', default=False),
        cache=dict(type='str', default='auto', choices=['auto', 'always', 'never']),
        read_ahead_kb=dict(type='int', default=1024),
        lock_timeout=dict(type='int', default=120),
        agent_timeout=dict(type='int', default=30),
        device_timeout=dict(type='int', default=60),
    )


def desired_from_params(params):
    """Validate and normalize the arguments into the desired record (no I/O). Raises SpecError."""
    model = _spec.validate_model(params['model'])
    for field in ('lock_timeout', 'agent_timeout', 'device_timeout'):
        if params[field] is None or params[field] < 1 or params[field] > 86400:
            raise _spec.SpecError(field, 'must be between 1 and 86400 seconds, got %r' % (params[field],))
    if params['state'] == 'absent':
        return {'model': model}, None
    if params['source_path'] is None:
        raise _spec.SpecError('source_path', 'is required with state=mounted')
    volume = params['volume']
    if not volume:
        raise _spec.SpecError('volume', 'is required with state=mounted')
    if params['cache'] == 'never':
        raise _spec.SpecError('cache', 'never is refused: model loaders mmap the weights and mmap fails on a '
                                       'virtiofs mount without cache; use auto or always')
    if params['read_ahead_kb'] is None or not 0 <= params['read_ahead_kb'] <= MAX_READ_AHEAD_KB:
        raise _spec.SpecError('read_ahead_kb', 'must be between 0 (keep the guest kernel default) and %d KiB, got %r'
                              % (MAX_READ_AHEAD_KB, params['read_ahead_kb']))
    name = _spec.validate_volume_name(volume['name'])
    if not volume.get('meta_url'):
        raise _spec.SpecError('volume.meta_url', 'is required with state=mounted (or set AIMODEL_META_URL)')
    meta_url, url_password = _spec.split_meta_url(volume['meta_url'])
    if url_password and volume.get('meta_password') and url_password != volume['meta_password']:
        raise _spec.SpecError('volume.meta_password', 'differs from the password inside volume.meta_url; give it once')
    if volume.get('cache_size') is not None and volume['cache_size'] < 0:
        raise _spec.SpecError('volume.cache_size', 'must not be negative')
    mount_path = _spec.normalize_mount_path(params['mount_path'] if params['mount_path'] is not None
                                            else _spec.default_mount_path(model))
    desired = {
        'model': model,
        'volume': name,
        'source_path': _spec.normalize_source_path(params['source_path']),
        'mount_path': mount_path,
        'tag': _spec.derive_tag(model),
        'read_only': params['read_only'],
        'persist': params['persist'],
        'guest_mount': params['guest_mount'],
        'cache': params['cache'],
        'read_ahead_kb': params['read_ahead_kb'],
    }
    connection = {
        'meta_url': meta_url,
        'password': url_password or volume.get('meta_password'),
        'mount_root': volume['mount_root'],
        'cache_dir': volume.get('cache_dir'),
        'cache_size': volume.get('cache_size'),
        'client_path': volume.get('client_path'),
    }
    return desired, connection


class Step:
    def __init__(self, text, do, undo=None, undo_text=None):
        self.text = text
        self.do = do
        self.undo = undo
        self.undo_text = undo_text


class Runner:
    def __init__(self, module, desired, volume_conn):
        self.module = module
        self.params = module.params
        self.desired = desired
        self.volume_conn = volume_conn
        self.steps = []
        self.pending = False

    # --- planning helpers -------------------------------------------------------------------------
    def add(self, text, do, undo=None, undo_text=None):
        self.steps.append(Step(text, do, undo, undo_text))

    def where(self):
        return 'VM %s' % self.params['vm']

    # --- entry ------------------------------------------------------------------------------------
    def run(self):
        conn = _libvirt.connect(self.params['uri'])
        try:
            domain = conn.lookup(self.params['vm'])
            if domain is None:
                return self.vm_missing()
            with _lock.Lock('vm-%s' % domain.uuid, self.params['lock_timeout'], 'VM %s' % domain.name):
                # Looked up again under the lock: it may have stopped, moved or vanished meanwhile.
                domain = conn.lookup(domain.uuid)
                if domain is None:
                    return self.vm_missing()
                agent = _guest.Agent(domain, self.params['agent_timeout'])
                state = VmState(domain, agent)
                if self.params['state'] == 'mounted':
                    before, after = self.plan_mounted(domain, agent, state)
                else:
                    before, after = self.plan_absent(domain, agent, state)
                return self.apply(domain, before, after)
        finally:
            conn.close()

    def vm_missing(self):
        if self.params['state'] == 'absent':
            return dict(changed=False, actions=[], mount=dict(vm=self.params['vm'], model=self.desired['model'],
                                                              status='absent'),
                        msg='VM %s does not exist on %s: nothing to unmount' % (self.params['vm'], self.params['uri']))
        raise MountFailed('VM %s is not defined on this host (%s): check the VM name and that the task runs on the '
                          'hypervisor that hosts it' % (self.params['vm'], self.params['uri']))

    def apply(self, domain, before, after):
        actions = [s.text for s in self.steps]
        changed = bool(self.steps)
        if changed and not self.module.check_mode:
            done = []
            try:
                for step in self.steps:
                    step.do()
                    done.append(step)
            except Exception as exc:  # pylint: disable=broad-except
                rolled, kept, left = self.rollback(done)
                detail = str(exc)
                msg = '%s: %s failed: %s.' % (self.where(), step.text, detail)
                if done:
                    msg += ' Done before the failure: %s.' % '; '.join(s.text for s in done)
                msg += ' Rolled back: %s.' % ('; '.join(rolled) if rolled else 'nothing was left to roll back')
                if kept:
                    msg += ' Kept on purpose: %s.' % '; '.join(kept)
                if left:
                    msg += ' NOT rolled back (fix by hand or re-run): %s.' % '; '.join(left)
                raise MountFailed(msg)
        if after is None:
            mount = dict(_record.public(before) or {'model': self.desired['model']}, vm=domain.name, status='absent')
        else:
            mount = dict(_record.public(after), vm=domain.name, status='pending' if self.pending else 'mounted')
        result = dict(changed=changed, actions=actions, mount=mount)
        if self.module._diff:  # pylint: disable=protected-access
            result['diff'] = dict(before=_record.public(before) or {}, after=_record.public(after) or {})
        return result

    def rollback(self, done):
        """Undo the done steps in reverse order: (rolled back, kept on purpose, failed to roll back)."""
        rolled, kept, left = [], [], []
        for step in reversed(done):
            if step.undo is None:
                if step.undo_text:
                    kept.append(step.undo_text)
                continue
            try:
                step.undo()
                rolled.append(step.undo_text or 'undo of "%s"' % step.text)
            except Exception as exc:  # pylint: disable=broad-except
                left.append('%s (%s)' % (step.undo_text or step.text, exc))
        return rolled, kept, left

    # --- state: mounted ---------------------------------------------------------------------------
    def plan_mounted(self, domain, agent, state):
        desired = dict(self.desired)
        model, tag, path = desired['model'], desired['tag'], desired['mount_path']
        records = dict(state.records)
        current = records.get(model)

        for other, rec in records.items():
            if other != model and rec.get('mount_path') == path:
                raise MountFailed('%s: mount_path %s already holds model %s; model %s cannot be mounted there '
                                  '(unmount %s first or choose another mount_path)' % (self.where(), path, other, model, other))
            if other != model and rec.get('tag') == tag:
                raise MountFailed('%s: models %s and %s derive the same virtiofs tag %s' % (self.where(), model, other, tag))
        if not state.shared_memory:
            raise MountFailed('%s has no shared memory backing, which virtiofs needs: %s' % (self.where(), SHARED_MEMORY_HINT))

        running = state.active
        if running and state.guest_error is not None:
            raise MountFailed('%s: the guest agent does not answer, so the guest side cannot be checked or changed '
                              '(is qemu-guest-agent running in the guest?): %s' % (self.where(), state.guest_error))
        if running and desired['guest_mount']:
            at = state.guest_mount_at(path)
            if at is not None and not (at['source'] == tag and at['fstype'] == _guest.FSTYPE):
                raise MountFailed('%s: %s is already a mount point in the guest (%s, %s), not of model %s; '
                                  'nothing was changed' % (self.where(), path, at['source'], at['fstype'], model))

        # The mount point first: a path the guest cannot use (a file, a read-only place) fails before anything
        # changes, on the host (its volume mount) or in the VM (a device).
        if running and desired['guest_mount'] and not [m for m in state.guest_mounts_of(tag) if m['target'] == path]:
            created = []
            self.add('create the mount point %s in the guest' % path,
                     lambda: created.extend(agent.make_dirs(path)),
                     lambda: agent.remove_dirs(created), 'removed the directories it created in the guest')

        # The host volume and the model's directory on it.
        conn = self.volume_conn
        point = _juicefs.mountpoint(desired['volume'], desired['read_only'], conn['mount_root'])
        host_state = _juicefs.status(point, desired['volume'])
        client = _juicefs.find_client(conn['client_path'])
        if host_state == 'foreign':
            raise MountFailed('%s is in use by something else (%s), not by volume %s'
                              % (point, _juicefs.describe(point), desired['volume']))
        if host_state == 'dead':
            self.add('remount the dead host volume %s at %s' % (desired['volume'], point),
                     lambda: self.mount_volume(client, desired, clear_dead=True))
        elif host_state == 'absent':
            self.add('mount volume %s %s on the host at %s'
                     % (desired['volume'], 'read-only' if desired['read_only'] else 'read-write', point),
                     lambda: self.mount_volume(client, desired),
                     undo_text='host volume %s stays mounted at %s (shared by all VMs of this host)'
                     % (desired['volume'], point))
        # The model's real directory: known now when the volume is up, else once the step above mounted it.
        resolved = {'dir': os.path.join(point, desired['source_path'])}
        if host_state == 'mounted':
            resolved['dir'] = self.resolve_source(point, desired)
        else:
            self.add('check that model %s exists at %s in volume %s' % (model, desired['source_path'], desired['volume']),
                     lambda: resolved.update(dir=self.resolve_source(point, desired)))
        source_dir = resolved['dir']
        if self.params['warmup']:
            self.add('warm up %s in the host cache' % desired['source_path'],
                     lambda: _juicefs.warmup(client, os.path.join(point, desired['source_path'])))

        # Converge an existing mount of this model to the new arguments.
        if current is not None and running and current.get('guest_mount'):
            old_path = current['mount_path']
            device_changes = (current.get('volume'), current.get('source_path'), current.get('read_only'),
                              current.get('cache')) != (desired['volume'], desired['source_path'], desired['read_only'],
                                                        desired['cache'])
            mounted_old = [m for m in state.guest_mounts_of(tag) if m['target'] == old_path]
            if mounted_old and (old_path != path or device_changes or not desired['guest_mount']):
                self.add('unmount %s from %s in the guest (converging to the new arguments)' % (tag, old_path),
                         lambda: agent.umount(old_path),
                         lambda: agent.mount_virtiofs(tag, old_path, current.get('read_only', True),
                                                      self.params['device_timeout']),
                         'mounted %s at %s in the guest again' % (tag, old_path))
                state.guest_mounts = [m for m in state.guest_mounts if m not in mounted_old]

        # The device: live and persistent.
        def device_xml():
            return _libvirt.filesystem_xml(resolved['dir'], tag, desired['cache'])
        want_config = state.persistent and (desired['persist'] or not running)
        cache_mode = _libvirt.CACHE_MODES.get(desired['cache'])
        live_dev = state.device(tag) if running else None
        cfg_dev = state.device(tag, config=True) if state.persistent else None

        def stale(dev):
            return dev is not None and (dev['source'] != source_dir or dev['cache'] != cache_mode)

        if running and len(state.devices_with_tag(tag)) > 1:
            raise MountFailed('%s has %d live devices with tag %s; unmount the model (state=absent) and mount it again'
                              % (self.where(), len(state.devices_with_tag(tag)), tag))
        # A device whose data path is broken (the host volume died, or the guest cannot read the mount) is
        # replaced: remounting the host volume alone does not heal virtiofsd, a new device does.
        broken = host_state == 'dead'
        backend_dead = running and live_dev is not None and state.backend_alive(tag) is False
        if backend_dead and state.guest_mounts_of(tag):
            raise MountFailed(BACKEND_DEAD % (self.where(), tag, ', '.join(m['target'] for m in state.guest_mounts_of(tag))))
        broken = broken or backend_dead
        here = [m for m in state.guest_mounts_of(tag) if m['target'] == path] if running else []
        # The data path under which the guest mount at path is known to be readable in this run (or None).
        verified = {'path': None}
        read_ahead = desired['read_ahead_kb'] if desired['guest_mount'] else 0
        check_read_ahead = False
        if here and live_dev is not None and not broken:
            now = self.data_path(domain, tag, point, state.live_devices, here[-1]['id'])
            if now is not None and (current or {}).get('verified') == now:
                # Proven readable before, and neither its virtiofsd, nor the host volume's mount, nor the guest
                # mount has changed since: not probed again (no guest process on a no-op). A re-attached
                # device, a remounted host volume or a guest reboot (the fstab mounts it again) changes this
                # and brings the probe back.
                verified['path'] = now
            else:
                broken = not agent.accessible_many([path]).get(path, False)
                verified['path'] = None if broken else now
            # The readahead is read every time (one small sysfs file): it is lost with every new guest mount
            # and can be changed by hand, and vm_model_mount_info reports it.
            check_read_ahead = bool(read_ahead) and not broken
        detach_live = running and live_dev is not None and (stale(live_dev) or broken)
        detach_cfg = cfg_dev is not None and (stale(cfg_dev) or not want_config)
        if running and (detach_live or live_dev is None):
            # Guest mounts of a device that is gone or about to go are dead: clear them first.
            for entry in reversed(state.guest_mounts_of(tag)):
                self.add('unmount the %s %s from %s in the guest' % ('broken' if broken else 'stale', tag, entry['target']),
                         lambda target=entry['target']: self.guest_umount(agent, target, True))
            state.guest_mounts = [m for m in (state.guest_mounts or []) if m['source'] != tag]
        if detach_live or detach_cfg:
            old_xml = _libvirt.filesystem_xml((live_dev or cfg_dev)['source'] if detach_live else cfg_dev['source'], tag)
            self.add('detach the outdated device %s (%s)' % (tag, _where(detach_live, detach_cfg)),
                     lambda: self.detach(domain, old_xml, tag, detach_live, detach_cfg),
                     lambda: domain.attach(old_xml, detach_live, detach_cfg),
                     'attached the previous device %s again' % tag)
        attach_live = running and (live_dev is None or detach_live)
        attach_cfg = want_config and (cfg_dev is None or detach_cfg)
        if attach_live or attach_cfg:
            self.add('attach virtiofs device %s for %s (%s)' % (tag, desired['source_path'], _where(attach_live, attach_cfg)),
                     lambda: self.attach(domain, device_xml(), tag, attach_live, attach_cfg),
                     lambda: self.detach(domain, device_xml(), tag, attach_live, attach_cfg),
                     'detached device %s (%s)' % (tag, _where(attach_live, attach_cfg)))

        # The fstab line before the guest mount: written while the guest is still discovering the device
        # just attached (0.1-0.3 s of PCI hot-plug under TCG), it costs no wall time.
        if running:
            old_fstab = state.fstab or ''
            if desired['guest_mount'] and desired['persist']:
                new_fstab = _guest.fstab_with(old_fstab, tag, _guest.fstab_line(tag, path, desired['read_only']))
            else:
                new_fstab = _guest.fstab_without(old_fstab, tag)
            if new_fstab != old_fstab and _guest.fstab_find(new_fstab, tag) != _guest.fstab_find(old_fstab, tag):
                self.add('%s the fstab line of %s in the guest' % ('write' if _guest.fstab_find(new_fstab, tag) else 'remove', tag),
                         lambda: agent.write_file(_guest.FSTAB, new_fstab),
                         lambda: agent.write_file(_guest.FSTAB, old_fstab),
                         'restored the guest fstab')
        else:
            self.pending = True
        # The guest mount, and its readahead (with the guest kernel's 128 KiB default, reads are a third slower).
        guest_touched = False
        if running and desired['guest_mount']:
            ro_opt = 'ro' if desired['read_only'] else 'rw'
            here = [m for m in state.guest_mounts_of(tag) if m['target'] == path]
            if here and ro_opt not in here[-1]['options']:
                self.add('unmount %s from %s in the guest (access mode changes)' % (tag, path), lambda: agent.umount(path))
                here = []
            if not here:
                mounted = {}

                def guest_mount():
                    agent.mount_virtiofs(tag, path, desired['read_only'], self.params['device_timeout'])
                    try:
                        found = [m for m in agent.mounts() if m['target'] == path and m['source'] == tag]
                        if not found:
                            raise MountFailed('the guest mounted %s at %s but its mount table does not show it' % (tag, path))
                    except Exception:
                        # This step failed, so the rollback will not undo it: take the mount back here.
                        self.guest_umount(agent, path, True)
                        raise
                    mounted.update(found[-1])
                    verified['path'] = self.data_path(domain, tag, point, guest_mount_id=mounted['id'])
                self.add('mount %s at %s in the guest (%s)' % (tag, path, ro_opt), guest_mount,
                         lambda: agent.umount(path), 'unmounted %s from %s in the guest' % (tag, path))
                if read_ahead:
                    self.add('set the readahead of %s in the guest to %d KiB' % (tag, read_ahead),
                             lambda: agent.set_read_ahead_kb(mounted['dev'], read_ahead))
                guest_touched = True
            elif check_read_ahead:
                dev = here[-1]['dev']
                now_kb = agent.read_ahead_kb(dev)
                if now_kb is not None and now_kb != read_ahead:
                    self.add('set the readahead of %s in the guest to %d KiB (was %d KiB)' % (tag, read_ahead, now_kb),
                             lambda: agent.set_read_ahead_kb(dev, read_ahead),
                             lambda: agent.set_read_ahead_kb(dev, now_kb), 'restored the readahead of %s' % tag)
                    guest_touched = True

        # The record, last.
        stamp = _now()
        new = dict(desired, created=(current or {}).get('created') or stamp, updated=stamp)
        live_records = dict(state.live_records)
        config_records = dict(state.config_records)
        # A guest mount or readahead set in this run refreshes the live record's data path even when nothing else
        # changed.
        write_live = running and (guest_touched or not _record.same(live_records.get(model), desired))
        write_cfg = state.persistent and ((want_config and not _record.same(config_records.get(model), desired))
                                          or (not want_config and model in config_records))
        if write_live or write_cfg:
            if write_live:
                if _record.same(current, desired):
                    live_records[model] = dict(current)   # only the data path is refreshed: created/updated stay
                else:
                    live_records[model] = dict(new)
                live_records[model].pop('verified', None)
            if write_cfg:
                if want_config:
                    config_records[model] = new
                else:
                    config_records.pop(model, None)

            def write():
                if write_live and verified['path'] and desired['guest_mount']:
                    live_records[model]['verified'] = verified['path']
                self.write_records(domain, live_records if write_live else None, config_records if write_cfg else None)
            self.add('write the record of %s (%s)' % (model, _where(write_live, write_cfg)), write,
                     lambda: self.write_records(domain, state.live_records if write_live else None,
                                                state.config_records if write_cfg else None),
                     'restored the previous record')
            after = live_records[model] if write_live else new
        else:
            after = current if running else state.config_records.get(model)
            after = dict(after or new)
        return current, after

    def mount_volume(self, client, desired, clear_dead=False):
        conn = self.volume_conn
        with _lock.Lock('volume-%s-%s' % (desired['volume'], 'ro' if desired['read_only'] else 'rw'),
                        self.params['lock_timeout'], 'volume %s' % desired['volume']):
            point = _juicefs.mountpoint(desired['volume'], desired['read_only'], conn['mount_root'])
            # Another run may have mounted (or repaired) it while we waited.
            current = _juicefs.status(point, desired['volume'])
            if current == 'mounted':
                return
            if current == 'dead' and clear_dead:
                _juicefs.lazy_unmount(point)
            _juicefs.mount(client, desired['volume'], conn['meta_url'], conn['password'], desired['read_only'],
                           root=conn['mount_root'], cache_dir=conn['cache_dir'], cache_size=conn['cache_size'])

    def resolve_source(self, point, desired):
        try:
            found = _juicefs.resolve_source(point, desired['source_path'])
        except _juicefs.VolumeError as exc:
            raise MountFailed('source_path: %s' % exc)
        if found is None:
            raise MountFailed('source_path: model %s not found at %s in volume %s'
                              % (desired['model'], desired['source_path'], desired['volume']))
        return found

    @staticmethod
    def data_path(domain, tag, point, devices=None, guest_mount_id=None):
        """What the guest mount of this tag reads through, as one string: the virtiofsd process of its live
        device (PID and start time), the kernel's ID of the host volume's mount and the guest's ID of the
        mount itself; None when any is unknown. A device attached again gets a new virtiofsd, a host volume
        mounted again a new ID, a guest mount made again (after a guest reboot) a new guest ID."""
        if guest_mount_id is None:
            return None
        if devices is None:
            devices = _libvirt.filesystems(domain.xml())
        dev = [d for d in devices if d['tag'] == tag]
        backend = domain.backend_identity(dev[0]['alias']) if len(dev) == 1 else None
        host = _juicefs.mount_id(point) if backend else None
        return '%s@%s#%s' % (backend, host, guest_mount_id) if host else None

    def attach(self, domain, device_xml, tag, live, config):
        try:
            domain.attach(device_xml, live, config)
        except _libvirt.VirtError as exc:
            if live and 'requires shared memory' in str(exc):
                # The VM's XML has shared memory (checked before): this is libvirt < 9.2 after a libvirtd restart.
                raise MountFailed('libvirt refused the hot-plug although the VM has shared memory backing: libvirt '
                                  'before 9.2 forgets it for running VMs once libvirtd restarts (Red Hat bug 2078693). '
                                  'Restart the VM (shutdown and start) and run again. libvirt said: %s' % exc)
            raise
        # Confirm in both XMLs: the device must really be there before anything else relies on it.
        if live and not any(d['tag'] == tag for d in _libvirt.filesystems(domain.xml())):
            raise MountFailed('device %s is not in the live XML after attaching it' % tag)
        if config and not any(d['tag'] == tag for d in _libvirt.filesystems(domain.xml(config=True))):
            raise MountFailed('device %s is not in the persistent XML after attaching it' % tag)

    def detach(self, domain, device_xml, tag, live, config):
        if config and not live:
            domain.detach(device_xml, False, True)
            return
        # Live (and maybe config) in one call, then wait until the guest has released the device.
        domain.detach(device_xml, live, config)
        if not _libvirt.wait_device_gone(domain, tag, self.params['device_timeout']):
            raise MountFailed('device %s is still in the live XML %ss after detaching it: the guest did not release '
                              'it (a guest process may be stuck on a mount whose virtiofsd died; then only a restart '
                              'of the VM frees the device)' % (tag, self.params['device_timeout']))

    @staticmethod
    def write_records(domain, live_records, config_records):
        for records, live, config in ((live_records, True, False), (config_records, False, True)):
            if records is None:
                continue
            domain.set_metadata(_record.render(records) if records else None, live, config)

    # --- state: absent ----------------------------------------------------------------------------
    def plan_absent(self, domain, agent, state):
        model = self.desired['model']
        running = state.active
        current = state.live_records.get(model) if running else None
        current = current or state.config_records.get(model)
        tag = (current or {}).get('tag') or _spec.derive_tag(model)
        live_devs = state.devices_with_tag(tag) if running else []
        cfg_dev = state.device(tag, config=True) if state.persistent else None
        force = self.params['force']

        if running and state.guest_error is not None and (live_devs or current) and not force:
            raise MountFailed('%s: the guest agent does not answer, so it cannot be checked that the guest no longer '
                              'uses %s; nothing was changed (start qemu-guest-agent, or use force: true to detach '
                              'anyway): %s' % (self.where(), model, state.guest_error))
        if running and state.guest_mounts is not None:
            if state.backend_alive(tag) is False and state.guest_mounts_of(tag):
                raise MountFailed(BACKEND_DEAD % (self.where(), tag, ', '.join(m['target'] for m in state.guest_mounts_of(tag))))
            for entry in reversed(state.guest_mounts_of(tag)):
                target = entry['target']
                self.add('unmount %s from %s in the guest%s' % (tag, target, ' (lazily if busy)' if force else ''),
                         lambda target=target: self.guest_umount(agent, target, force))
        if live_devs:
            xml = _libvirt.filesystem_xml(live_devs[0]['source'], tag)
            for index in range(len(live_devs)):
                both = index == 0 and cfg_dev is not None
                self.add('detach device %s (%s) and wait until the guest released it' % (tag, _where(True, both)),
                         lambda both=both: self.detach(domain, xml, tag, True, both))
        elif cfg_dev is not None:
            xml = _libvirt.filesystem_xml(cfg_dev['source'], tag)
            self.add('detach device %s (persistent)' % tag, lambda: domain.detach(xml, False, True))
        if running and state.fstab is not None and _guest.fstab_find(state.fstab, tag):
            new_fstab = _guest.fstab_without(state.fstab, tag)
            self.add('remove the fstab line of %s in the guest' % tag, lambda: agent.write_file(_guest.FSTAB, new_fstab))
        live_records = dict(state.live_records)
        config_records = dict(state.config_records)
        in_live = running and model in live_records
        in_cfg = state.persistent and model in config_records
        if in_live or in_cfg:
            live_records.pop(model, None)
            config_records.pop(model, None)
            self.add('remove the record of %s (%s)' % (model, _where(in_live, in_cfg)),
                     lambda: self.write_records(domain, live_records if in_live else None,
                                                config_records if in_cfg else None))
        return current, None

    @staticmethod
    def guest_umount(agent, target, force):
        try:
            agent.umount(target)
        except _guest.GuestError:
            if not force:
                raise
            agent.umount(target, lazy=True)


def _where(live, config):
    if live and config:
        return 'live and persistent'
    return 'live' if live else 'persistent'


class _Module(AnsibleModule):
    """ansible-core reports a dict option that is not a dict without its name ("dictionary requested, could
    not parse JSON or key=value"); volume is the only dict option, so name it."""

    def fail_json(self, msg=None, **kwargs):  # pylint: disable=arguments-differ
        if isinstance(msg, str) and msg.startswith('dictionary requested'):
            msg = 'volume: must be a dictionary (name, meta_url, ...): %s' % msg
        super(_Module, self).fail_json(msg=msg, **kwargs)


def main():
    module = _Module(argument_spec=argument_spec(), supports_check_mode=True)
    if not _libvirt.HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib('libvirt-python'), exception=_libvirt.LIBVIRT_IMPORT_ERROR)
    try:
        desired, volume_conn = desired_from_params(module.params)
    except _spec.SpecError as exc:
        module.fail_json(msg=str(exc), field=exc.field)
    if volume_conn and volume_conn.get('password'):
        module.no_log_values.add(volume_conn['password'])
    try:
        result = Runner(module, desired, volume_conn).run()
    except (MountFailed, _lock.LockTimeout, _juicefs.VolumeError, _guest.GuestError, _libvirt.VirtError,
            _record.RecordError) as exc:
        module.fail_json(msg=str(exc), vm=module.params['vm'], model=module.params['model'])
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg='unexpected error for VM %s, model %s: %s' % (module.params['vm'], module.params['model'], exc),
                         exception=traceback.format_exc())
    module.exit_json(**result)


if __name__ == '__main__':
    main()
