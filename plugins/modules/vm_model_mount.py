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
  - On the hypervisor the volume is mounted once per host and access mode under O(volume.mount_root). Each VM has
    one virtiofs device per access mode (tag C(aimodel-ro) or C(aimodel-rw); C(aimodel-ro-always) with
    O(cache=always)), hot-plugged with its first model (live and persistent in one call) and detached with its
    last. The device serves the VM's export directory C(/var/lib/aimodel/exports/<vm-uuid>/<ro|rw>), whose top is
    a read-only mount; each model is a bind mount of its directory into it, opened one component at a time without
    following symlinks, so what is served is exactly what was checked. A mount after the first needs no new
    device, no PCI slot and no new virtiofsd.
  - In the guest, through the QEMU guest agent (an argument vector, never a shell), the device is mounted once at
    C(/run/aimodel/<ro|rw>) (C(nosuid,nodev)) and each model is bind-mounted from there onto its O(mount_path),
    read-only where asked; the guest's C(/etc/fstab) holds the base mount and one bind line per model, in that
    order, with C(nofail) (and C(x-systemd.requires-mounts-for=) for systemd guests). The mount is recorded in the
    domain's metadata, so the record follows the VM and dies with it.
  - The binds live in the host's mount table only; the libvirt hook that role M(aimodel.kvm.hypervisor) installs
    rebuilds them from the record before QEMU starts (after a host reboot or a VM restart), and any run rebuilds
    them too.
  - A model mounted by an earlier release as a virtiofs device of its own is moved to the VM's shared device by the
    next run with O(state=mounted) (its guest mount is replaced right before the new bind, then its own device is
    detached).
  - Safe to re-run. Any failure after a change rolls back what the run did and says what was rolled back.
  - One operation per VM at a time on a hypervisor (a lock); the VM is looked up again under the lock.
author:
  - aimodel.kvm developers (@aimodel)
extends_documentation_fragment:
  - aimodel.kvm.connection
  - aimodel.kvm.run_options
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
    aliases: [name, guest]
  model:
    description:
      - Logical name of the model. It identifies the mount within the VM (one mount per model per VM) and derives
        its tag (C(aim-<name>-<hash>), at most 64 bytes, with 64 bits of the name's sha256), the name of its directory in the VM's export tree.
      - Letters, digits, V(.), V(_) and V(-), starting with a letter or digit, at most 128 characters.
    type: str
    required: true
  source_path:
    description:
      - Directory of the model inside the volume. V(models/x) and V(/models/x) both mean that directory under the
        volume's root. It must be a directory of the volume reached without any symbolic link (every component is
        opened without following one, and without crossing into another mount); V(..) is refused.
      - Required with O(state=mounted).
    type: str
  volume:
    description:
      - The model repository volume that holds the model. Required with O(state=mounted); with O(state=absent)
        everything is read from the record.
      - M(aimodel.kvm.vm_model_mount_info) takes the same option (so that one C(module_defaults) entry of the
        group C(aimodel.kvm.kvm) sets it for both) and uses only its O(volume.mount_root).
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
          - A password inside it (V(redis://:password@host:6379/1)) is taken out and passed to the client through its
            environment only. It runs from the first V(:) after V(://) to the last V(@), so it may hold V(:), V(/)
            and V(@) as they are; any character may be %-encoded (V(%40) for V(@)), and a V(%) of the password must
            be written V(%25).
          - If not set, the environment variable E(AIMODEL_META_URL) is used.
        type: str
      meta_password:
        description:
          - Password of the metadata engine, taken as it is (not %-encoded). Passed to the client only through its
            environment, never on a command line, never stored, never logged.
          - If not set, the environment variable E(AIMODEL_META_PASSWORD) is used.
        type: str
      mount_root:
        description:
          - Directory under which the volume is mounted on the host, as C(<mount_root>/<name>/<ro|rw>).
          - It must be an absolute path without V(..) (it is normalized). It, and every directory on the way to it
            (symbolic links followed), must be owned by root (or the user the module runs as) and writable by neither
            its group nor others. A world-writable directory with the sticky bit, such as C(/tmp), is passed through
            only to an entry of root's that exists (nobody else can rename or remove it); nothing is made in it. Other
            parts that do not exist yet are made by the module.
          - Not V(/) itself, nor in C(/proc), C(/sys) or C(/dev).
        type: path
        default: /var/lib/aimodel/volumes
      cache_dir:
        description:
          - Local cache directory of the client on the host. Default is the client's own.
          - It must be an absolute path without V(..) (it is normalized). It, and every directory on the way to it
            (symbolic links followed), must be owned by root (or the user the module runs as) and writable by neither
            its group nor others. A world-writable directory with the sticky bit, such as C(/tmp), is passed through
            only to an entry of root's that exists (nobody else can rename or remove it); nothing is made in it. Other
            parts that do not exist yet are made by the module.
          - Not V(/) itself, nor in C(/proc), C(/sys) or C(/dev).
        type: path
      cache_size:
        description:
          - Local cache size in MiB. Default is the client's own.
        type: int
      client_path:
        description:
          - Path of the client binary on the host. Default is found on E(PATH) and in C(/usr/local/bin).
          - It must be an absolute path without V(..) (it is normalized). It, and every directory on the way to it
            (symbolic links followed), must be owned by root (or the user the module runs as) and writable by neither
            its group nor others. A world-writable directory with the sticky bit, such as C(/tmp), is passed through
            only to an entry of root's that exists. It must be an executable file.
        type: path
  mount_path:
    description:
      - Absolute path inside the guest. Default is C(/mnt/models/<model>).
      - It is normalized (V(/mnt/models/./a), V(/mnt/models//a/) and V(/mnt/models/a) are one path) and the normalized
        value is what is compared and stored. Relative paths, V(..), white space and control characters are refused.
      - System trees are refused, themselves and everything below them, since a model there would hide or replace
        what the guest's system reads - C(/etc), C(/root), C(/usr), C(/boot), C(/efi), C(/bin), C(/sbin), C(/lib*)
        (C(/lib), C(/lib64), ...), C(/proc), C(/sys), C(/dev), C(/run) (with the collection's own C(/run/aimodel)) and
        C(/var), except below its data places C(/var/lib/models) and C(/var/lib/aimodel).
      - V(/), V(/tmp), V(/home), V(/opt), V(/srv), V(/mnt), V(/media), V(/var/lib/models) and V(/var/lib/aimodel)
        themselves are refused (a mount there hides all they hold); paths below them are where models go, as is a
        directory of its own such as V(/models).
    type: str
  read_only:
    description:
      - Mount read-only. Enforced on the host (the volume is mounted read-only and the model's bind is made
        read-only before it is attached to the export tree) and in the guest (C(-o ro)), since libvirt does not
        support read-only virtiofs devices. Read-only and read-write models of one VM use two devices.
    type: bool
    default: true
  state:
    description:
      - V(mounted) mounts the model (or converges an existing mount of the same model to the new arguments).
      - V(absent) unmounts it in the guest, removes its fstab line, its bind on the host and the record; with the
        last model of a device also the device's base mount, its fstab line, the device and the export directory.
        A VM that does not exist is nothing to do. A guest process that holds a file of the model open keeps
        reading it until it closes it.
      - V(absent) of a model without a record (a run that crashed can leave one) takes away what carries its tag (a
        device of its own, its bind in the VM's export tree, and the export directory when no model and no
        device uses it any more), and nothing when another model's record names that tag.
      - V(detached) takes the model out of the running VM like V(absent) (guest mounts, fstab lines, bind, and the
        shared device with its last attached model) but keeps its record (live and persistent), marked detached;
        the libvirt hook pins nothing for it, M(aimodel.kvm.vm_model_mount_info) reports it with status
        C(detached), and V(mounted) with the record's arguments brings it back, on this host or on the one the VM
        was migrated to (playbook C(aimodel.kvm.migrate_vm) does that). A model already detached, or without a
        record, is nothing to do; V(absent) removes a detached record.
    type: str
    choices: [mounted, absent, detached]
    default: mounted
  agent_timeout:
    description:
      - Seconds to wait for one guest agent call, and for one guest command (a mount, the rewrite of the fstab) to
        finish; the default leaves room for a guest under TCG emulation, where guest commands are slow.
      - The same option, with the same default, as O(aimodel.kvm.vm_model_mount_info#module:agent_timeout).
    type: int
    default: 30
notes:
  - The VM must have shared memory backing (C(<memoryBacking><source type='memfd'/><access mode='shared'/>)); adding
    it needs a VM restart.
  - The guest needs qemu-guest-agent and the virtiofs kernel module.
  - A run that finds the model in place reads both XMLs, the record, the guest's mount table, fstab and the mount's
    readahead, and changes nothing. It probes the guest mount (a C(statfs) in the guest) only when the mount's data
    path changed since the mount was proven readable (the device attached again, the model bound again on the host,
    the VM restarted, the guest rebooted); the live record keeps that data path (its virtiofsd, the host bind and the
    guest mount). M(aimodel.kvm.vm_model_mount_info) probes every mount.
  - A host volume whose client died is mounted again, its model bound again and bound again in the guest, without
    detaching the device. Only a dead virtiofsd (the device's process on the host) needs a restart of the VM.
  - The programs it runs on the hypervisor (the JuiceFS client's mount and warmup, C(umount)) get none of the module's
    environment but E(PATH), E(HOME), E(TZ) and the proxy variables, with the C locale, and the password as
    E(META_PASSWORD); not E(AIMODEL_META_URL), not E(REDIS_PASSWORD) (which the client would prefer).
  - Every failure names the VM and model and leaves nothing half-done. Bad input fails before anything is touched,
    with the option's name first, for example C(mount_path - must not be the system directory /etc). The failures a
    run can meet, and what to do, follow.
  - C(VM ... is not defined on this host) - the task runs on another hypervisor than the VM's (O(state=absent) is ok).
  - C(has no shared memory backing) - add the memory backing above and restart the VM.
  - C(the guest agent does not answer) - start qemu-guest-agent in the guest; nothing was changed.
  - C(the guest of VM ... answered out of bounds) - the guest sent a file or output past its cap (for example an
    C(/etc/fstab) that links to C(/dev/zero)), a malformed reply, or used up O(guest_timeout); its root has to
    repair the guest. Nothing was changed, or the message lists what was rolled back.
  - C(mount_path ... already holds model X) or C(... is already a mount point in the guest) - another model or file
    system is there; unmount it or choose another O(mount_path).
  - C(model X not found at Y in volume Z) or C(source_path ... is a symbolic link) - fix O(source_path) or the
    volume (a writer of the volume replaced a directory by a symlink).
  - C(volume.meta_url - the metadata engine at host:port does not accept connections) - the metadata engine is down
    or unreachable from the hypervisor.
  - C(volume.meta_url - NAME is mounted at POINT, but it is not the volume NAME of URL (UUID ...)) - a volume is its
    UUID, as its metadata engine reports it, not its name; the host already mounts another volume of that name (of
    another engine). Give this one another O(volume.mount_root), or unmount the other. The record keeps the UUID and
    the URL without its password; a later run trusts the record for that URL instead of asking the engine again.
  - C(volume ... does not answer statfs within 5s - it is slow or hung) - the host volume's client is overloaded or
    stuck (a slow metadata engine, a stopped client). It is never remounted for a timeout, since the models of other VMs
    are read from it; check its log under C(/var/log/aimodel) and run again. A client that is gone (the mount
    answers C(Transport endpoint is not connected)) is remounted.
  - C(... failed ... Rolled back - ...) - a step failed after changes; the message lists what was undone (and what is
    kept on purpose, the shared host volume mount).
  - C(another operation on VM ... held its lock ... (lock_timeout)) - a concurrent run; raise O(lock_timeout) or
    retry.
  - C(the lock directory /run/aimodel/locks is ...) - the directory of the locks is made root-owned with mode 0700;
    one that is a symbolic link, is owned by another user or is writable by its group or others is refused; remove
    it and run again.
  - C(uri - ... only the hypervisor the task runs on can be managed) - set O(uri) (or E(LIBVIRT_DEFAULT_URI)) to
    V(qemu:///system); run the task on the hypervisor itself (with O(uri) as is) rather than through a remote URI.
  - C(volume.client_path - ... is writable by others) (or C(volume.mount_root), C(volume.cache_dir)) - the path, or
    a directory on the way to it, could be changed by another user; use a root-owned place such as C(/usr/local/bin)
    or C(/var/lib/aimodel).
  - C(unmounting ... failed ... the mount is busy) - a guest process uses the model; stop it or use O(force=true).
  - C(the virtiofsd process of device ... is gone) or C(libvirt refused the hot-plug although the VM has shared
    memory backing) - only a restart of the VM (shutdown and start) clears these; run again afterwards.
  - C(the guest agent of VM ... has disabled guest-exec, ...) - the agent answers but refuses commands the run needs
    (it is checked before anything changes, with one guest-info per run). RHEL-family guests ship it locked down in
    C(/etc/sysconfig/qemu-ga) (C(BLACKLIST_RPC) on RHEL 8, the C(--allow-rpcs) list of C(FILTER_RPC_ARGS) on RHEL 9
    family); allow the commands named there, or use O(guest_mount=false). The same error names a guest whose file
    systems are frozen (C(the agent is in frozen state)); thaw them (C(virsh domfsthaw)).
  - C(... has no free hot-plug slot for the shared device) (or libvirt's C(No more available PCI slots)) - the first
    model of a VM and access mode hot-plugs one PCI device. On q35 each device needs a free C(pcie-root-port); add
    C(<controller type='pci' model='pcie-root-port'/>) to the VM's XML and restart it (shutdown and start).
    RV(aimodel.kvm.vm_model_mount_info#module:vms[].free_hotplug_slots) shows how many a VM has left.
  - C(the kernel of the guest ... has no virtiofs file system) - the guest needs Linux 5.4 or later with
    C(CONFIG_VIRTIO_FS); the run is rolled back.
  - C(replacing /etc/fstab failed ... on a read-only file system in the guest) - the guest's root is read-only; use
    O(persist=false), or make the fstab writable (a symbolic link to a writable place is followed). The run is rolled
    back.
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

- name: Set the connection and volume once for several tasks (of both modules)
  module_defaults:
    group/aimodel.kvm.kvm:
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
    volume_uuid:
      description:
        - The volume's UUID as its metadata engine reported it when the model was mounted; a volume is this, not
          its name. V(null) in a record of an earlier release (the next run of M(aimodel.kvm.vm_model_mount) adds it).
      type: str
      sample: b28a9107-10c1-4904-931f-f4f367595740
    meta_url:
      description: The URL of the volume's metadata engine, without its password.
      type: str
      sample: redis://10.0.0.5:6379/1
    source_path:
      description: Normalized directory of the model inside the volume.
      type: str
      sample: models/all-minilm-l6-v2
    mount_path:
      description: Normalized path inside the guest.
      type: str
      sample: /mnt/models/all-minilm-l6-v2
    tag:
      description: The model's tag, the name of its directory in the VM's export tree (and the virtiofs tag of its
        own device for a model mounted by an earlier release).
      type: str
      sample: aim-all-minilm-l6-v2-d2ab480c
    device:
      description: The virtiofs tag of the VM's shared device that serves the model.
      type: str
      sample: aimodel-ro
    mount_root:
      description: Where the host mounts the volume (O(volume.mount_root)).
      type: str
      sample: /var/lib/aimodel/volumes
    read_only:
      description: Whether the mount is read-only.
      type: bool
      sample: true
    persist:
      description: Whether the mount survives reboots.
      type: bool
      sample: true
    guest_mount:
      description: Whether the model is mounted inside the guest.
      type: bool
      sample: true
    cache:
      description: virtiofs cache mode.
      type: str
      sample: auto
    read_ahead_kb:
      description: The guest's readahead the model asks for in KiB (V(0) when left to the guest).
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
        - V(mounted) when the model is served and mounted in the guest; V(pending) when the VM is stopped and the
          guest part completes once it runs; V(absent) after an unmount; V(detached) after O(state=detached).
      type: str
      sample: mounted
actions:
  description: What the run did, or would do in check mode, in order.
  returned: always
  type: list
  elements: str
  sample:
    - create the mount point /mnt/models/all-minilm-l6-v2 in the guest
    - mount volume models read-only on the host at /var/lib/aimodel/volumes/models/ro
    - pin models/all-minilm-l6-v2 of volume models into the export tree of the VM
      (/var/lib/aimodel/exports/7f1c1d3e-0e9a-4f3f-9d7e-4f5d2b1b8a11/ro/aim-all-minilm-l6-v2-d2ab480c)
    - attach the shared virtiofs device aimodel-ro for /var/lib/aimodel/exports/7f1c1d3e-0e9a-4f3f-9d7e-4f5d2b1b8a11/ro
      (live and persistent)
    - mount the shared device aimodel-ro at /run/aimodel/ro in the guest (ro)
    - set the readahead of aimodel-ro in the guest to 1024 KiB
    - write the fstab lines of all-minilm-l6-v2 in the guest
    - bind /run/aimodel/ro/aim-all-minilm-l6-v2-d2ab480c at /mnt/models/all-minilm-l6-v2 in the guest (ro)
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

import functools
import traceback

from ansible_collections.aimodel.kvm.plugins.module_utils import _absent
from ansible_collections.aimodel.kvm.plugins.module_utils import _hostpath
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _mounted
from ansible_collections.aimodel.kvm.plugins.module_utils import _options
from ansible_collections.aimodel.kvm.plugins.module_utils import _plan
from ansible_collections.aimodel.kvm.plugins.module_utils import _spec
from ansible_collections.aimodel.kvm.plugins.module_utils._errors import AimodelError


def argument_spec():
    spec = _options.shared(required=True)
    spec.update(_options.model_options())
    spec.update(_options.run_options())
    return spec


def run(module, desired, volume):
    """Plan under the VM's lock, apply (unless in check mode), report."""
    state = module.params['state']
    if state == 'mounted':
        plan = _mounted.plan
    elif state == 'detached':
        plan = functools.partial(_absent.plan, keep_record=True)
    else:
        plan = _absent.plan
    with _plan.locked_vm(module.params) as domain:
        if domain is None:
            return _plan.vm_missing(module.params, desired)
        ctx = _plan.Context(module.params, desired, volume, domain, module.run_command)
        before, after = plan(ctx)
        ctx.check_guest_steps()
        if not module.check_mode:
            ctx.plan.apply()
        return _plan.result(ctx, before, after, module._diff)  # pylint: disable=protected-access


def main():
    module = _options.Module(argument_spec())
    if not _libvirt.HAS_LIBVIRT:
        module.fail_json(msg=_libvirt.missing_binding_msg(), exception=_libvirt.LIBVIRT_IMPORT_ERROR)
    try:
        desired, volume = _spec.desired_from_params(module.params)
        if volume:
            _hostpath.check_volume(volume)
    except _spec.SpecError as exc:
        module.fail_json(msg=str(exc), field=exc.field)
    if volume:
        module.no_log_values.update(volume['secrets'])
    try:
        result = run(module, desired, volume)
    except AimodelError as exc:
        extra = dict(field=exc.field) if exc.field else {}
        module.fail_json(msg=str(exc), vm=module.params['vm'], model=module.params['model'], **extra)
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg='unexpected error for VM %s, model %s: %s' % (module.params['vm'], module.params['model'], exc),
                         exception=traceback.format_exc())
    module.exit_json(**result)


if __name__ == '__main__':
    main()
