#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r'''
---
module: vm_model_volume_release
short_description: Unmount a host volume that no VM of the hypervisor uses any more
version_added: 0.1.0
description:
  - A model repository volume is mounted once per hypervisor and access mode (C(<mount_root>/<name>/<ro|rw>)), for
    all its VMs, and M(aimodel.kvm.vm_model_mount) keeps it mounted when its last model goes. This module unmounts
    it when nothing uses it any more; playbook C(aimodel.kvm.migrate_vm) runs it on the source after a VM left.
  - The volume is kept while any VM of the hypervisor (running or not) has a record of a model of it at that
    mount point (live or persistent, detached ones too), and while the host's mount table shows its file system
    anywhere else (a model's bind in a VM's export tree, any other bind); the result says who uses it.
  - The mount point is unmounted under the volume's lock, never lazily; a busy mount fails and stays mounted.
author:
  - aimodel.kvm developers (@aimodel)
extends_documentation_fragment:
  - aimodel.kvm.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
    description: A second run finds the volume unmounted, or still used, and changes nothing.
options:
  volume:
    description:
      - The volume, as O(aimodel.kvm.vm_model_mount#module:volume) takes it; only its name and mount root are used
        (the other settings are accepted so that the C(module_defaults) of the action group C(aimodel.kvm.kvm)
        apply).
    type: dict
    required: true
    suboptions:
      name:
        description: Name of the volume, as it was formatted.
        type: str
        required: true
      meta_url:
        description:
          - Metadata engine URL of the volume; a password inside it is passed to the client through its environment
            only. If not set, the environment variable E(AIMODEL_META_URL) is used.
        type: str
      meta_password:
        description:
          - Password of the metadata engine, never stored or logged. If not set, E(AIMODEL_META_PASSWORD) is used.
        type: str
      mount_root:
        description: Directory under which the volume is mounted on the host, as C(<mount_root>/<name>/<ro|rw>).
        type: path
        default: /var/lib/aimodel/volumes
      cache_dir:
        description: Local cache directory of the client on the host. Default is the client's own.
        type: path
      cache_size:
        description: Local cache size in MiB. Default is the client's own.
        type: int
      client_path:
        description: Path of the client binary on the host. Default is found on E(PATH) and in C(/usr/local/bin).
        type: path
  read_only:
    description: Release the read-only mount (V(true)), the read-write one (V(false)), or both (not set).
    type: bool
  uri:
    description: The libvirt of this hypervisor (its VMs' records are read); only the local URIs that
      M(aimodel.kvm.vm_model_mount) accepts.
    type: str
    default: qemu:///system
  lock_timeout:
    description: Seconds to wait for another run that mounts the same volume.
    type: int
    default: 120
  agent_timeout:
    description:
      - Accepted so that the C(module_defaults) of the action group C(aimodel.kvm.kvm) apply; not used (no guest is
        asked).
    type: int
notes:
  - Needs root on the hypervisor, like M(aimodel.kvm.vm_model_mount).
  - A run that mounts a model of the volume at the same time (after its volume check, before its record) can find
    the volume gone and fail, changing nothing; run it again.
seealso:
  - module: aimodel.kvm.vm_model_mount
  - module: aimodel.kvm.vm_model_host_check
'''

EXAMPLES = r'''
- name: Unmount volume models on hv1 if no VM there uses it any more
  aimodel.kvm.vm_model_volume_release:
    volume:
      name: models
  delegate_to: hv1
  register: release
'''

RETURN = r'''
released:
  description: The mount points unmounted (or that would be, in check mode).
  returned: success
  type: list
  elements: str
  sample: [/var/lib/aimodel/volumes/models/ro]
kept:
  description: The mount points kept, each with what uses it.
  returned: success
  type: list
  elements: dict
  contains:
    point:
      description: The mount point.
      type: str
      sample: /var/lib/aimodel/volumes/models/ro
    users:
      description: What uses it, in words (C(VM <name>), C(a mount of it at <path>)).
      type: list
      elements: str
      sample: [VM inference-02]
'''

from ansible_collections.aimodel.kvm.plugins.module_utils import _hostpath
from ansible_collections.aimodel.kvm.plugins.module_utils import _juicefs
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _lock
from ansible_collections.aimodel.kvm.plugins.module_utils import _options
from ansible_collections.aimodel.kvm.plugins.module_utils import _release
from ansible_collections.aimodel.kvm.plugins.module_utils import _spec
from ansible_collections.aimodel.kvm.plugins.module_utils._errors import AimodelError


def argument_spec():
    volume = _options.shared(required=True)['volume']
    volume['required'] = True
    return dict(
        volume=volume,
        read_only=dict(type='bool'),
        uri=dict(type='str', default='qemu:///system'),
        lock_timeout=dict(type='int', default=120),
        agent_timeout=dict(type='int'),
    )


def release(module, name, root):
    """Each access mode asked for: released or kept (with its users)."""
    params, host = module.params, _juicefs.Host(module.run_command)
    modes = [True, False] if params['read_only'] is None else [params['read_only']]
    released, kept = [], []
    conn = _libvirt.connect(params['uri'])
    try:
        for read_only in modes:
            with _lock.Lock('volume-%s-%s' % (name, 'ro' if read_only else 'rw'), params['lock_timeout'], 'volume %s' % name):
                point, users, mounted = _release.plan(conn.domains(), _juicefs.host_mounts(), name, read_only, root)
                if users:
                    kept.append(dict(point=point, users=users))
                elif mounted:
                    if not module.check_mode:
                        host.unmount(point)
                    released.append(point)
    finally:
        conn.close()
    return dict(changed=bool(released), released=released, kept=kept)


def main():
    module = _options.Module(argument_spec())
    params = module.params
    try:
        _spec.validate_uri(params['uri'])
        name = _spec.validate_volume_name(params['volume']['name'])
        root = params['volume'].get('mount_root')
        root = _spec.normalize_host_path(root, 'volume.mount_root') if root else None
        if root:
            _hostpath.check_trusted('volume.mount_root', root)
        _spec.check_seconds('lock_timeout', params['lock_timeout'])
    except _spec.SpecError as exc:
        module.fail_json(msg=str(exc), field=exc.field)
    if not _libvirt.HAS_LIBVIRT:
        module.fail_json(msg=_libvirt.missing_binding_msg(), exception=_libvirt.LIBVIRT_IMPORT_ERROR)
    try:
        result = release(module, name, root)
    except AimodelError as exc:
        module.fail_json(msg='volume %s on this host: %s' % (name, exc), field=getattr(exc, 'field', None))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
