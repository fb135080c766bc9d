#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r'''
---
module: vm_model_mounts
short_description: Converge one libvirt VM to its whole set of AI models in one run
version_added: 0.1.0
description:
  - The declared set of one VM in one run. Every entry of O(mounts) is mounted (or, with O(mounts[].state=absent),
    unmounted) exactly as M(aimodel.kvm.vm_model_mount) does it for one model, and with O(exclusive=true) the models
    recorded on the VM that O(mounts) does not name are unmounted in the same run.
  - Every entry is checked before anything is touched; a bad entry fails the run naming it (for example
    C(mounts[2].mount_path)), and two entries of the same model or the same O(mounts[].mount_path) are refused.
  - The whole set runs under one hold of the VM's lock, so no other run of the collection on that VM (another job,
    a slice of a job, the libvirt hook) sees it half-converged. The unmounts of models whose mount path an entry
    takes come first, then the mounts in the order of O(mounts), then the other unmounts; each is planned against
    the VM as the one before left it.
  - When an entry fails, every mount the run did (its own and those before it) is rolled back, newest first, and
    the error names the entry. An unmount is not rolled back (the model's data stays on its volume, and a re-run
    mounts it again); the error lists the unmounts that stay done - which is why the unmounts that no mount needs
    come last, after every mount succeeded.
  - A run that finds everything in place reads the VM (its XML, records, the guest's mount table and fstab) once
    for the whole set and changes nothing.
  - In check mode every entry is planned against the VM as it was read (nothing is applied), so an entry may list
    a step that an entry before it would already have done.
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
  mounts:
    description:
      - The models of the VM, one entry per model. Each entry takes the per-model options of
        M(aimodel.kvm.vm_model_mount) with the same meaning and defaults; the options of the run (O(persist),
        O(read_ahead_kb), O(lock_timeout), ...) hold for every entry.
      - An empty list with O(exclusive=true) unmounts every model recorded on the VM.
    type: list
    elements: dict
    default: []
    suboptions:
      model:
        description:
          - Logical name of the model (O(aimodel.kvm.vm_model_mount#module:model)).
        type: str
        required: true
      source_path:
        description:
          - Directory of the model inside the volume (O(aimodel.kvm.vm_model_mount#module:source_path)); required
            with O(mounts[].state=mounted).
        type: str
      mount_path:
        description:
          - Path inside the guest (O(aimodel.kvm.vm_model_mount#module:mount_path)).
        type: str
      read_only:
        description:
          - Mount the model read-only (O(aimodel.kvm.vm_model_mount#module:read_only)).
        type: bool
        default: true
      state:
        description:
          - V(mounted), V(absent) or V(detached) (O(aimodel.kvm.vm_model_mount#module:state)). A detach is, like an
            unmount, not rolled back when a later entry fails; V(mounted) from its record brings the model back.
        type: str
        choices: [mounted, absent, detached]
        default: mounted
      volume:
        description:
          - The volume that holds the model (O(aimodel.kvm.vm_model_mount#module:volume)); with
            O(mounts[].state=mounted) this or the run's O(volume) is required.
        type: dict
        suboptions:
          name:
            description: Name of the volume (O(aimodel.kvm.vm_model_mount#module:volume.name)).
            type: str
            required: true
          meta_url:
            description:
              - URL of the volume's metadata engine (O(aimodel.kvm.vm_model_mount#module:volume.meta_url)); from
                E(AIMODEL_META_URL) when not given.
            type: str
          meta_password:
            description:
              - Password of the metadata engine (O(aimodel.kvm.vm_model_mount#module:volume.meta_password)); from
                E(AIMODEL_META_PASSWORD) when not given.
            type: str
          mount_root:
            description: Where the host mounts the volume (O(aimodel.kvm.vm_model_mount#module:volume.mount_root)).
            type: path
            default: /var/lib/aimodel/volumes
          cache_dir:
            description: The JuiceFS client's cache directory (O(aimodel.kvm.vm_model_mount#module:volume.cache_dir)).
            type: path
          cache_size:
            description: The JuiceFS client's cache size in MiB (O(aimodel.kvm.vm_model_mount#module:volume.cache_size)).
            type: int
          client_path:
            description: The JuiceFS client (O(aimodel.kvm.vm_model_mount#module:volume.client_path)).
            type: path
  volume:
    description:
      - The volume of every entry of O(mounts) that names none, with the suboptions of
        O(aimodel.kvm.vm_model_mount#module:volume); an entry's own O(mounts[].volume) wins as a whole.
      - The same option as vm_model_mount's, so that one C(module_defaults) entry of the group C(aimodel.kvm.kvm)
        serves all the collection's modules.
    type: dict
    suboptions:
      name:
        description: Name of the volume (O(aimodel.kvm.vm_model_mount#module:volume.name)).
        type: str
        required: true
      meta_url:
        description:
          - URL of the volume's metadata engine (O(aimodel.kvm.vm_model_mount#module:volume.meta_url)); from
            E(AIMODEL_META_URL) when not given.
        type: str
      meta_password:
        description:
          - Password of the metadata engine (O(aimodel.kvm.vm_model_mount#module:volume.meta_password)); from
            E(AIMODEL_META_PASSWORD) when not given.
        type: str
      mount_root:
        description: Where the host mounts the volume (O(aimodel.kvm.vm_model_mount#module:volume.mount_root)).
        type: path
        default: /var/lib/aimodel/volumes
      cache_dir:
        description: The JuiceFS client's cache directory (O(aimodel.kvm.vm_model_mount#module:volume.cache_dir)).
        type: path
      cache_size:
        description: The JuiceFS client's cache size in MiB (O(aimodel.kvm.vm_model_mount#module:volume.cache_size)).
        type: int
      client_path:
        description: The JuiceFS client (O(aimodel.kvm.vm_model_mount#module:volume.client_path)).
        type: path
  exclusive:
    description:
      - Also unmount, in the same run and first, the models recorded on the VM (in its live or persistent record)
        that O(mounts) does not name.
    type: bool
    default: false
  agent_timeout:
    description:
      - Seconds to wait for one guest agent call, and for one guest command to finish
        (O(aimodel.kvm.vm_model_mount#module:agent_timeout)).
    type: int
    default: 30
notes:
  - The VM needs what M(aimodel.kvm.vm_model_mount) needs (shared memory backing, a guest agent for the guest
    mounts); its notes hold for every entry.
  - O(guest_timeout) is the guest's time for the whole run, all entries together.
seealso:
  - module: aimodel.kvm.vm_model_mount
  - module: aimodel.kvm.vm_model_mount_info
  - plugin: aimodel.kvm.model_mounts
    plugin_type: inventory
    description: Where every model is mounted across the fleet. The role of the same name converges every declared VM
      of a hypervisor with one run of this module per VM.
'''

EXAMPLES = r'''
- name: Give inference-01 exactly these two models
  aimodel.kvm.vm_model_mounts:
    vm: inference-01
    exclusive: true
    mounts:
      - model: all-minilm-l6-v2
        source_path: models/all-minilm-l6-v2
        mount_path: /mnt/models/minilm
        volume: &models
          name: models
          meta_url: redis://10.0.0.5:6379/1
          meta_password: "{{ vault_juicefs_meta_password }}"
      - model: llama-3-8b
        source_path: models/llama-3-8b
        volume: *models

- name: Take every model out of batch-07
  aimodel.kvm.vm_model_mounts:
    vm: batch-07
    mounts: []
    exclusive: true
    force: true
'''

RETURN = r'''
mounts:
  description:
    - One result per entry of O(mounts), in their order, each as M(aimodel.kvm.vm_model_mount) returns it for
      one model (RV(aimodel.kvm.vm_model_mount#module:mount), RV(aimodel.kvm.vm_model_mount#module:actions)),
      with C(changed) and C(model).
  returned: always
  type: list
  elements: dict
  contains:
    model:
      description: The entry's model.
      type: str
      sample: all-minilm-l6-v2
    changed:
      description: Whether the run changed (or in check mode would change) something for the entry.
      type: bool
      sample: false
    actions:
      description: What the run did for the entry (RV(aimodel.kvm.vm_model_mount#module:actions)).
      type: list
      elements: str
      sample: []
    mount:
      description:
        - The mount as recorded after the run, with its status (RV(aimodel.kvm.vm_model_mount#module:mount)).
      type: dict
      sample: {vm: inference-01, model: all-minilm-l6-v2, mount_path: /mnt/models/minilm, status: mounted}
  sample:
    - model: all-minilm-l6-v2
      changed: false
      actions: []
      mount: {vm: inference-01, model: all-minilm-l6-v2, mount_path: /mnt/models/minilm, status: mounted}
unmounted:
  description: The models that O(exclusive=true) unmounted because O(mounts) does not name them.
  returned: always
  type: list
  elements: str
  sample: [bert-base]
actions:
  description: What the run did, or would do in check mode, in order, each prefixed with its model.
  returned: always
  type: list
  elements: str
  sample:
    - 'bert-base: remove the record of bert-base (live and persistent)'
diff:
  description: The records before and after, by model, in diff mode.
  returned: when diff mode is on
  type: dict
  sample:
    before: {}
    after:
      all-minilm-l6-v2: {model: all-minilm-l6-v2, mount_path: /mnt/models/minilm}
'''

import traceback

from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _options
from ansible_collections.aimodel.kvm.plugins.module_utils import _set
from ansible_collections.aimodel.kvm.plugins.module_utils import _spec
from ansible_collections.aimodel.kvm.plugins.module_utils._errors import AimodelError


def argument_spec():
    spec = _options.shared(required=True)
    entry = _options.model_options()
    entry['volume'] = _options.shared(required=True)['volume']
    spec.update(_options.run_options())
    spec.update(
        mounts=dict(type='list', elements='dict', default=[], options=entry),
        exclusive=dict(type='bool', default=False),
    )
    return spec


def main():
    module = _options.Module(argument_spec())
    if not _libvirt.HAS_LIBVIRT:
        module.fail_json(msg=_libvirt.missing_binding_msg(), exception=_libvirt.LIBVIRT_IMPORT_ERROR)
    for item in module.params['mounts']:
        for secret in _spec.url_secrets(((item.get('volume') or module.params['volume']) or {}).get('meta_url')):
            module.no_log_values.add(secret)
    try:
        entries = _set.entries(module.params)
    except _spec.SpecError as exc:
        module.fail_json(msg=str(exc), field=exc.field)
    for entry in entries:
        if entry.volume:
            module.no_log_values.update(entry.volume['secrets'])
    try:
        result = _set.run(module, entries)
    except AimodelError as exc:
        extra = dict(field=exc.field) if exc.field else {}
        if getattr(exc, 'model', None):
            extra['model'] = exc.model
        module.fail_json(msg=str(exc), vm=module.params['vm'], **extra)
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg='unexpected error for VM %s: %s' % (module.params['vm'], exc), exception=traceback.format_exc())
    module.exit_json(**result)


if __name__ == '__main__':
    main()
