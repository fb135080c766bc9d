#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r'''
---
module: vm_model_mount_info
short_description: Report the models mounted in libvirt VMs, as they really are
version_added: 0.1.0
description:
  - For each VM, joins five sources, the mount record in the domain metadata, the live domain XML, the persistent
    domain XML, the guest's mount table and fstab (read once per VM through the QEMU guest agent) and the host's
    mount table (the volumes and the binds in the VM's export tree).
  - Reports one entry per recorded mount with a status and the reasons for it, and the devices of this collection
    that have no record (orphans). It never changes anything.
author:
  - aimodel.kvm developers (@aimodel)
extends_documentation_fragment:
  - aimodel.kvm.connection
  - aimodel.kvm.attributes
  - aimodel.kvm.attributes.info_module
attributes:
  idempotent:
    support: full
    description: It never changes anything.
options:
  vm:
    description:
      - Name or UUID of the VM. All VMs of the host when omitted. A VM that does not exist gives an empty result.
    type: str
    aliases: [name, guest]
  model:
    description:
      - Only report this model.
    type: str
  volume:
    description:
      - The same option as O(aimodel.kvm.vm_model_mount#module:volume), so that one C(module_defaults) entry of the
        group C(aimodel.kvm.kvm) sets it for both modules.
      - Only O(volume.mount_root) is used, as where the host's volumes are looked for. The report is never filtered
        by volume - every recorded mount of every volume and every orphan is reported, whatever O(volume.name) says.
        The other suboptions are accepted and not used.
    type: dict
    suboptions:
      name:
        description:
          - Name of the volume. Not used here (see above).
        type: str
      meta_url:
        description:
          - As O(aimodel.kvm.vm_model_mount#module:volume.meta_url). Not used here; a password inside it is masked.
          - If not set, the environment variable E(AIMODEL_META_URL) is used.
        type: str
      meta_password:
        description:
          - As O(aimodel.kvm.vm_model_mount#module:volume.meta_password). Not used here.
          - If not set, the environment variable E(AIMODEL_META_PASSWORD) is used.
        type: str
      mount_root:
        description:
          - Directory under which the host mounts the volumes (as O(aimodel.kvm.vm_model_mount#module:volume.mount_root)),
            where this module looks for them. A record that holds its own mount root (every record this release
            writes) is looked for there instead.
          - Checked like that option - absolute, without V(..), and it and every directory on the way to it owned by
            root (or the user the module runs as) and writable by neither its group nor others (C(/tmp) is refused
            too).
        type: path
        default: /var/lib/aimodel/volumes
      cache_dir:
        description:
          - As O(aimodel.kvm.vm_model_mount#module:volume.cache_dir). Not used here.
        type: path
      cache_size:
        description:
          - As O(aimodel.kvm.vm_model_mount#module:volume.cache_size). Not used here.
        type: int
      client_path:
        description:
          - As O(aimodel.kvm.vm_model_mount#module:volume.client_path). Not used here.
        type: path
  agent_timeout:
    description:
      - Seconds to wait for one guest agent call, and for one guest command to finish.
      - The same option, with the same default, as O(aimodel.kvm.vm_model_mount#module:agent_timeout); a call gets
        at most what is left of O(guest_report_timeout).
    type: int
    default: 30
  guest_report_timeout:
    description:
      - Seconds the guest of each VM may take for that VM's report, all its agent calls and guest commands together;
        each guest call gets at most what is left. VMs are reported one after the other, so this bounds what one
        guest that answers slowly (or not at all) adds to the run.
      - A guest that uses them up, answers out of bounds or with garbage gets the reason V(guest_error) on its
        mounts and its message in RV(vms[].guest_error); the other VMs are reported in full.
      - Not the budget of a run of M(aimodel.kvm.vm_model_mount)
        (O(aimodel.kvm.vm_model_mount#module:guest_timeout)), which changes the guest and is given more time.
    type: int
    default: 30
seealso:
  - module: aimodel.kvm.vm_model_mount
'''

EXAMPLES = r'''
- name: What is mounted in one VM
  aimodel.kvm.vm_model_mount_info:
    vm: inference-01
  register: models

- name: Fail when a model is not really there
  ansible.builtin.assert:
    that: models.mounts | selectattr('status', '!=', 'mounted') | list | length == 0
    fail_msg: "{{ models.mounts | rejectattr('status', '==', 'mounted') | list }}"

- name: Every VM of the host, one model
  aimodel.kvm.vm_model_mount_info:
    model: all-minilm-l6-v2
'''

RETURN = r'''
mounts:
  description:
    - One entry per recorded mount. The sample shows one of each status.
  returned: always
  type: list
  elements: dict
  sample:
    - vm: inference-01
      model: all-minilm-l6-v2
      volume: models
      volume_uuid: b28a9107-10c1-4904-931f-f4f367595740
      meta_url: redis://10.0.0.5:6379/1
      source_path: models/all-minilm-l6-v2
      mount_path: /mnt/models/all-minilm-l6-v2
      tag: aim-all-minilm-l6-v2-d2ab480c
      device: aimodel-ro
      read_only: true
      persist: true
      guest_mount: true
      cache: auto
      read_ahead_kb: 1024
      mount_root: /var/lib/aimodel/volumes
      created: '2026-11-23T22:40:00Z'
      updated: '2026-11-23T22:40:00Z'
      status: mounted
      reasons: []
      layout: shared_device
      host_pinned: pinned
      device_live: true
      device_config: true
      guest_mounted: true
      guest_accessible: true
      in_fstab: true
      tuning:
        read_ahead_kb: 1024
        guest_read_ahead_kb: 1024
        differs: false
        kept_on_reboot: true
        kept_by: /etc/systemd/system/aimodel-ro-readahead.service
        not_kept: null
    - vm: inference-01
      model: llama-3-8b
      volume: models
      source_path: models/llama-3-8b
      mount_path: /srv/models/llama
      tag: aim-llama-3-8b-5e1f0c2a
      device: aimodel-ro
      read_only: true
      persist: false
      guest_mount: true
      cache: auto
      read_ahead_kb: 1024
      mount_root: /var/lib/aimodel/volumes
      created: '2026-11-23T22:41:00Z'
      updated: '2026-11-23T22:41:00Z'
      status: degraded
      reasons: [not_mounted_in_guest]
      layout: shared_device
      host_pinned: pinned
      device_live: true
      device_config: true
      guest_mounted: false
      guest_accessible: null
      in_fstab: false
      tuning: null
    - vm: batch-07
      model: all-minilm-l6-v2
      volume: models
      volume_uuid: b28a9107-10c1-4904-931f-f4f367595740
      meta_url: redis://10.0.0.5:6379/1
      source_path: models/all-minilm-l6-v2
      mount_path: /mnt/models/all-minilm-l6-v2
      tag: aim-all-minilm-l6-v2-d2ab480c
      device: aimodel-ro
      read_only: true
      persist: true
      guest_mount: true
      cache: auto
      read_ahead_kb: 1024
      mount_root: /var/lib/aimodel/volumes
      created: '2026-11-23T22:42:00Z'
      updated: '2026-11-23T22:42:00Z'
      status: pending
      reasons: [vm_stopped]
      layout: shared_device
      host_pinned: null
      device_live: false
      device_config: true
      guest_mounted: null
      guest_accessible: null
      in_fstab: null
      tuning: null
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
      description: Directory of the model inside the volume.
      type: str
      sample: models/all-minilm-l6-v2
    mount_path:
      description: Path inside the guest.
      type: str
      sample: /mnt/models/all-minilm-l6-v2
    tag:
      description: The model's tag, the name of its directory in the VM's export tree (the virtiofs tag of its own
        device for a model mounted by an earlier release).
      type: str
      sample: aim-all-minilm-l6-v2-d2ab480c
    device:
      description: The virtiofs tag of the VM's shared device that serves the model; null for a model mounted by an
        earlier release as a device of its own.
      type: str
      sample: aimodel-ro
    mount_root:
      description: Where the host mounts the volume.
      type: str
      sample: /var/lib/aimodel/volumes
    layout:
      description:
        - V(shared_device) for a model served by the VM's shared device (a bind in its export tree).
        - V(own_device) for a model mounted by an earlier release as a virtiofs device of its own; the next run of
          M(aimodel.kvm.vm_model_mount) with O(aimodel.kvm.vm_model_mount#module:state=mounted) moves it.
      type: str
      choices: [shared_device, own_device]
      sample: shared_device
    host_pinned:
      description:
        - The model's bind in the VM's export tree on the host. V(pinned) it binds exactly the recorded directory of
          the mounted volume and answers; V(missing) nothing is bound (for example the libvirt hook could not pin it
          when the VM started); V(stale) something else is bound (the directory was renamed or replaced in the
          volume, or the volume was mounted again); V(dead) its volume's client does not answer.
        - Null when not looked at (VM stopped, own device, host volume not mounted).
      type: str
      sample: pinned
    read_only:
      description: Whether the mount is read-only.
      type: bool
      sample: true
    persist:
      description: Whether the mount is kept across reboots.
      type: bool
      sample: true
    guest_mount:
      description: Whether the device is meant to be mounted inside the guest.
      type: bool
      sample: true
    cache:
      description: virtiofs cache mode.
      type: str
      sample: auto
    read_ahead_kb:
      description: The guest readahead (KiB) the mount was declared with; V(0) when left to the guest; null for a
        mount recorded before the option existed.
      type: int
      sample: 1024
    created:
      description: When the mount was first recorded.
      type: str
      sample: '2026-11-23T22:40:00Z'
    updated:
      description: When the record last changed.
      type: str
      sample: '2026-11-23T22:40:00Z'
    status:
      description:
        - V(mounted) only when the device is in the live XML (and the persistent XML for a persistent mount), the model
          is bound on the host, the guest has it mounted at O(aimodel.kvm.vm_model_mount#module:mount_path) and can
          read it, and the host volume is up.
        - V(pending) when the VM is stopped (it comes back from the persistent configuration at the next start).
        - V(degraded) otherwise, with RV(mounts[].reasons) saying why.
        - V(detached) for a record kept while its model is out of the VM
          (O(aimodel.kvm.vm_model_mount#module:state=detached), before a migration); nothing serves it, and a
          device or bind still there is reported in RV(orphans).
      type: str
      choices: [mounted, pending, degraded, detached]
      sample: mounted
    reasons:
      description:
        - Why the mount is not V(mounted), each a stable word a playbook can test for.
        - V(vm_stopped) the VM is not running (status V(pending)).
        - V(device_missing_live) or V(device_missing_config) the virtiofs device is not in the live or persistent XML.
        - V(device_backend_dead) the virtiofsd process of the device is gone (checked on the host; the guest mount is
          then not probed, since any access to it would hang in the guest).
        - V(not_mounted_in_guest) the guest's mount table lacks it (after a reboot without the fstab line, or a
          manual umount).
        - V(stale_guest_mount) the guest lists it but cannot read it (Transport endpoint is not connected).
        - V(guest_unreachable) the guest agent does not answer, so the guest side is unknown.
        - V(guest_commands_disabled) the guest agent answers but refuses the commands that read the guest (a
          locked-down agent, or frozen file systems), so the guest side of a model mounted in the guest is unknown;
          RV(vms[].guest_disabled_commands) names them. A model with O(aimodel.kvm.vm_model_mount#module:guest_mount=false)
          is not observed in the guest and gets no such reason.
        - V(guest_error) the guest answered out of bounds (a file or an output past its cap, a reply of the wrong
          shape, the VM's time used up) or a guest command failed; RV(vms[].guest_error) says what. Other VMs are
          reported in full.
        - V(fstab_missing) a persistent mount has no line in the guest's fstab (it will not come back after a reboot).
        - V(host_volume_dead) the volume's client on the host died or something else is mounted there.
        - V(host_volume_slow) the volume's host mount did not answer statfs within 5 seconds (busy or hung, which cannot
          be told apart); M(aimodel.kvm.vm_model_mount) then fails rather than remount a volume other VMs read from.
        - V(host_volume_not_recorded) the volume mounted on the host under the recorded name is not the recorded volume
          (its UUID differs from RV(mounts[].volume_uuid)), another volume of the same name.
        - V(not_pinned), V(pin_stale), V(pin_dead) the model's bind on the host is missing, binds something else, or
          does not answer (see RV(mounts[].host_pinned)); the guest then does not read the recorded directory.
        - A readahead other than the one asked is no reason here (the mount serves its data); see RV(mounts[].tuning).
        - Running M(aimodel.kvm.vm_model_mount) again with the same arguments repairs every reason but
          V(guest_unreachable), V(vm_stopped), V(host_volume_slow) and V(host_volume_not_recorded).
      type: list
      elements: str
      sample: [not_mounted_in_guest]
    device_live:
      description: Whether the device is in the live domain XML.
      type: bool
      sample: true
    device_config:
      description: Whether the device is in the persistent domain XML.
      type: bool
      sample: true
    guest_mounted:
      description: Whether the guest's mount table has the model at the mount path; null when the guest could not be asked.
      type: bool
      sample: true
    guest_accessible:
      description: Whether a process in the guest can read the mount; null when not checked.
      type: bool
      sample: true
    in_fstab:
      description: Whether the guest's fstab has the lines of this mount (the device's base line and the model's
        bind line); null when the guest could not be asked.
      type: bool
      sample: true
    tuning:
      description:
        - The guest's tuning of the mount (its readahead), apart from what it serves; null when no readahead is asked
          (V(read_ahead_kb=0)), the model is not mounted in the guest, or the guest cannot be read.
        - On a guest that runs systemd, M(aimodel.kvm.vm_model_mount) writes a unit with the device's fstab line that
          sets the readahead again after every boot; a guest without systemd comes back from a reboot with its
          kernel's default (128 KiB) until the next run.
      type: dict
      returned: always
      contains:
        read_ahead_kb:
          description: The readahead the device's base mount should have in KiB (the largest its models ask for).
          type: int
          sample: 1024
        guest_read_ahead_kb:
          description: The guest's readahead of the device's base mount in KiB; null when it could not be read.
          type: int
          sample: 1024
        differs:
          description: Whether RV(mounts[].tuning.guest_read_ahead_kb) is not RV(mounts[].tuning.read_ahead_kb) (after a
            reboot of a guest that cannot keep it, or a change by hand); a run sets it again. Null when not read.
          type: bool
          sample: false
        kept_on_reboot:
          description: Whether the guest sets this readahead again after a reboot by itself; null when that could not
            be read.
          type: bool
          sample: true
        kept_by:
          description: The guest's systemd unit that keeps it (its mount unit wants it); null when not kept.
          type: str
          sample: /etc/systemd/system/aimodel-ro-readahead.service
        not_kept:
          description:
            - Why it is not kept, null when it is.
            - V(no_systemd) the guest's PID 1 is not systemd (after a reboot the fstab mounts the model with the kernel's
              default readahead until the next run).
            - V(unit_missing) the guest runs systemd but the unit is missing or asks for another value (a run writes it).
            - V(not_persisted) the mount is not in the guest's fstab (V(persist=false)), so it does not come back at all.
            - V(own_device) the model is on a device of its own (an earlier layout; a run moves it).
          type: str
          sample: null
orphans:
  description:
    - Devices of this collection (virtiofs tag C(aimodel-...), or C(aim-...) of an earlier release) that no record
      uses (kind V(device_without_record), in the live or the persistent XML), records of a running VM with no
      device at all (kind V(record_without_device)), and binds in a VM's export tree on the host that no record
      has (kind V(bind_without_record), V(where) C(host), V(source) the bind's path).
  returned: always
  type: list
  elements: dict
  sample:
    - vm: inference-01
      kind: device_without_record
      where: live
      tag: aimodel-rw
      model: null
      source: /var/lib/aimodel/exports/7f1c1d3e-0e9a-4f3f-9d7e-4f5d2b1b8a11/rw
  contains:
    vm:
      description: Name of the VM.
      type: str
      sample: inference-01
    kind:
      description: What has no counterpart.
      type: str
      choices: [device_without_record, record_without_device, bind_without_record]
      sample: device_without_record
    where:
      description: Where it was found - V(live) or V(config) (the live or the persistent domain XML), V(record) (the
        domain metadata) or V(host) (the VM's export tree on the host).
      type: str
      choices: [live, config, record, host]
      sample: live
    tag:
      description: The virtiofs tag of the device, or the model's tag (the name of its directory in the export tree).
      type: str
      sample: aimodel-rw
    model:
      description: The model of the record, for V(record_without_device); null otherwise.
      type: str
      sample: null
    source:
      description: The directory the device serves, or the path of the bind on the host; null for
        V(record_without_device).
      type: str
      sample: /var/lib/aimodel/exports/7f1c1d3e-0e9a-4f3f-9d7e-4f5d2b1b8a11/rw
vms:
  description: One entry per VM looked at.
  returned: always
  type: list
  elements: dict
  sample:
    - vm: inference-01
      uuid: 7f1c1d3e-0e9a-4f3f-9d7e-4f5d2b1b8a11
      active: true
      persistent: true
      guest_reachable: true
      guest_error: null
      guest_disabled_commands: []
      guest_unobserved: []
      guest_frozen: false
      free_hotplug_slots: 4
  contains:
    vm:
      description: Name of the VM.
      type: str
      sample: inference-01
    uuid:
      description: UUID of the VM.
      type: str
      sample: 7f1c1d3e-0e9a-4f3f-9d7e-4f5d2b1b8a11
    active:
      description: Whether the VM runs.
      returned: unless RV(vms[].error) is set
      type: bool
      sample: true
    persistent:
      description: Whether the VM has a persistent configuration.
      returned: unless RV(vms[].error) is set
      type: bool
      sample: true
    guest_reachable:
      description: Whether the guest agent answered (null for a stopped VM); true for an agent that answers but
        refuses commands.
      returned: unless RV(vms[].error) is set
      type: bool
    guest_disabled_commands:
      description:
        - The commands of the guest agent that the collection uses (C(guest-exec), C(guest-exec-status),
          C(guest-file-open), C(guest-file-read), C(guest-file-close)) and that the agent has disabled, as its
          C(guest-info) says; null for a stopped VM or an agent that does not answer.
      returned: unless RV(vms[].error) is set
      type: list
      elements: str
    guest_unobserved:
      description:
        - What of the guest could not be observed because of RV(vms[].guest_disabled_commands) - V(mounts) (the mount
          table), V(fstab), V(read_ahead), V(accessible) (whether a mount answers, which needs a guest command); the
          fields of the mounts that depend on them are then null. Empty when everything was observed.
        - C(guest-get-fsinfo), which locked-down agents often allow, is not used - it leaves out every file system
          without a block device, virtiofs among them.
      returned: unless RV(vms[].error) is set
      type: list
      elements: str
    guest_frozen:
      description: Whether the guest's file systems are frozen (C(guest-fsfreeze-status)), asked only when the agent
        refuses commands; while they are, the agent refuses all but a few.
      returned: unless RV(vms[].error) is set
      type: bool
    free_hotplug_slots:
      description:
        - How many PCI devices more can be hot-plugged into the running VM, from its live XML - on q35 the
          C(pcie-root-port) controllers with no device on them, on pc the free slots of the root bus (and of its
          pci-bridges). The first model of a VM and access mode needs one; the models after it need none.
        - Null for a stopped VM, or a machine type whose slots cannot be told from its XML.
      returned: unless RV(vms[].error) is set
      type: int
    guest_error:
      description: What went wrong with the guest (clipped guest text), or null.
      returned: unless RV(vms[].error) is set
      type: str
    error:
      description: The message, for a VM that could not be read at all (its mounts are then not listed).
      returned: when the VM could not be read
      type: str
'''

import traceback

from ansible_collections.aimodel.kvm.plugins.module_utils import _hostpath
from ansible_collections.aimodel.kvm.plugins.module_utils import _info
from ansible_collections.aimodel.kvm.plugins.module_utils import _juicefs
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _options
from ansible_collections.aimodel.kvm.plugins.module_utils import _spec
from ansible_collections.aimodel.kvm.plugins.module_utils._errors import AimodelError


def argument_spec():
    spec = _options.shared(required=False)
    spec.update(
        model=dict(type='str'),
        guest_report_timeout=dict(type='int', default=30),
    )
    return spec


def main():
    module = _options.Module(argument_spec())
    if not _libvirt.HAS_LIBVIRT:
        module.fail_json(msg=_libvirt.missing_binding_msg(), exception=_libvirt.LIBVIRT_IMPORT_ERROR)
    p = module.params
    try:
        _spec.validate_uri(p['uri'])
        # Without a volume the default of volume.mount_root; the rest of the volume is not used (see DOCUMENTATION).
        mount_root = _spec.normalize_host_path(p['volume']['mount_root'] if p['volume'] else _juicefs.DEFAULT_MOUNT_ROOT,
                                               'volume.mount_root')
        _hostpath.check_trusted('volume.mount_root', mount_root)
        agent_timeout = _spec.check_seconds('agent_timeout', p['agent_timeout'])
        budget = _spec.check_seconds('guest_report_timeout', p['guest_report_timeout'])
    except _spec.SpecError as exc:
        module.fail_json(msg=str(exc), field=exc.field)
    try:
        conn = _libvirt.connect(p['uri'])
        try:
            mounts, orphans, vms = _info.collect(conn, p['vm'], p['model'], mount_root, agent_timeout, budget)
        finally:
            conn.close()
    except AimodelError as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg='unexpected error: %s' % exc, exception=traceback.format_exc())
    module.exit_json(changed=False, mounts=mounts, orphans=orphans, vms=vms)


if __name__ == '__main__':
    main()
