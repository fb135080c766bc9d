#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r'''
---
module: vm_model_host_check
short_description: Check that a hypervisor can serve models of a volume, before they are mounted there
version_added: 0.1.0
description:
  - Proves on the hypervisor the task runs on that a model repository volume can be mounted there and holds the
    given model directories, without touching any VM. Playbook C(aimodel.kvm.migrate_vm) runs it on the destination
    of a migration before anything changes on the source.
  - The volume's metadata engine is asked for the volume's identity (its name must match, and its UUID the one
    given in O(volume_uuid)); the volume is then mounted on the host under O(volume.mount_root) when it is not
    (as M(aimodel.kvm.vm_model_mount) mounts it, once per host and access mode; the mount is kept, shared by all
    VMs of the host), and each of O(source_paths) must be a directory of the volume reached without a symbolic link.
  - In check mode a volume that is not mounted yet is not mounted, and its directories are not checked.
  - With O(virtiofs_migration), it also reports whether this hypervisor could migrate a VM with virtiofs devices
    natively (RV(virtiofs_migration)); without O(volume) that is all it does.
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
    description: A second run finds the volume mounted and reports no change.
options:
  volume:
    description:
      - The volume, as O(aimodel.kvm.vm_model_mount#module:volume) takes it. Required unless
        O(virtiofs_migration) is set.
    type: dict
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
  volume_uuid:
    description:
      - The UUID the volume must have (a record's RV(aimodel.kvm.vm_model_mount#module:mount.volume_uuid)); not
        checked when not given.
    type: str
  read_only:
    description: Check the read-only mount of the volume (V(true)) or the read-write one.
    type: bool
    default: true
  source_paths:
    description:
      - Directories of models inside the volume that must be there (as
        O(aimodel.kvm.vm_model_mount#module:source_path) takes them).
    type: list
    elements: str
    default: []
  lock_timeout:
    description: Seconds to wait for another run that mounts the same volume.
    type: int
    default: 120
  virtiofs_migration:
    description:
      - Also find out whether this hypervisor can migrate virtiofs devices natively, from the versions of libvirt
        and QEMU (read from the libvirt at O(uri)), the vhost-user-fs descriptor libvirt uses (in
        C(/etc/qemu/vhost-user) or C(/usr/share/qemu/vhost-user); it must list C(migrate-precopy)) and its
        virtiofsd (C(--version), and C(--help) must offer C(--migration-mode)).
    type: bool
    default: false
  uri:
    description:
      - The libvirt of this hypervisor, read only with O(virtiofs_migration) (no VM is looked at). Only the local
        URIs that M(aimodel.kvm.vm_model_mount) accepts.
    type: str
    default: qemu:///system
  agent_timeout:
    description:
      - Accepted so that the C(module_defaults) of the action group C(aimodel.kvm.kvm) apply; not used (no guest is
        asked).
    type: int
notes:
  - Needs root on the hypervisor, like M(aimodel.kvm.vm_model_mount).
  - A native migration of virtiofs needs libvirt 10.6 or later, QEMU 8.2 or later and virtiofsd 1.11 or later
    (with C(--migration-mode)) on both hypervisors, and both must serve the same volume at the same path;
    virtiofsd moves no file data.
seealso:
  - module: aimodel.kvm.vm_model_mount
'''

EXAMPLES = r'''
- name: Check that hv2 can serve two models of volume models
  aimodel.kvm.vm_model_host_check:
    volume:
      name: models
      meta_url: redis://10.0.0.5:6379/1
      meta_password: "{{ vault_models_meta_password }}"
    volume_uuid: b28a9107-10c1-4904-931f-f4f367595740
    source_paths:
      - models/all-minilm-l6-v2
      - models/llama-3-8b
  delegate_to: hv2

- name: Can hv2 migrate virtiofs devices natively?
  aimodel.kvm.vm_model_host_check:
    virtiofs_migration: true
  delegate_to: hv2
  register: hv2_support
'''

RETURN = r'''
point:
  description: Where the volume is (or would be) mounted on the host.
  returned: success and O(volume) is set
  type: str
  sample: /var/lib/aimodel/volumes/models/ro
volume_uuid:
  description: The volume's UUID as its metadata engine reports it.
  returned: success and O(volume) is set
  type: str
  sample: b28a9107-10c1-4904-931f-f4f367595740
mounted:
  description: Whether the volume is mounted on the host after the run (V(false) only in check mode).
  returned: success and O(volume) is set
  type: bool
  sample: true
checked:
  description: The model directories found (normalized); empty in check mode for a volume not mounted yet.
  returned: success and O(volume) is set
  type: list
  elements: str
  sample: [models/all-minilm-l6-v2]
virtiofs_migration:
  description: Whether this hypervisor can migrate virtiofs devices natively, and what was found.
  returned: O(virtiofs_migration) is set
  type: dict
  contains:
    native:
      description: Whether it can.
      type: bool
      sample: false
    reasons:
      description: Why not, in words; empty when it can.
      type: list
      elements: str
      sample: [libvirt 9.0.0 is older than 10.6.0]
    libvirt:
      description: The version of libvirt.
      type: str
      sample: 9.0.0
    qemu:
      description: The version of QEMU.
      type: str
      sample: 7.2.15
    virtiofsd:
      description: The first line of C(virtiofsd --version), or null.
      type: str
      sample: virtiofsd 1.13.3
    descriptor:
      description: The vhost-user-fs descriptor libvirt uses, or null.
      type: str
      sample: /usr/share/qemu/vhost-user/50-virtiofsd.json
    virtiofsd_binary:
      description: The virtiofsd the descriptor names, or null.
      type: str
      sample: /usr/libexec/virtiofsd
    precopy:
      description: Whether the descriptor lists C(migrate-precopy).
      type: bool
      sample: true
'''

import os

from ansible_collections.aimodel.kvm.plugins.module_utils import _hostpath
from ansible_collections.aimodel.kvm.plugins.module_utils import _juicefs
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _migrate
from ansible_collections.aimodel.kvm.plugins.module_utils import _mounted
from ansible_collections.aimodel.kvm.plugins.module_utils import _options
from ansible_collections.aimodel.kvm.plugins.module_utils import _spec
from ansible_collections.aimodel.kvm.plugins.module_utils._errors import AimodelError
from ansible_collections.aimodel.kvm.plugins.module_utils._plan import OperationFailed


def argument_spec():
    shared = _options.shared(required=True)
    spec = dict(volume=shared['volume'], uri=dict(type='str', default='qemu:///system'), agent_timeout=dict(type='int'))
    spec['volume']['required'] = False
    spec.update(
        virtiofs_migration=dict(type='bool', default=False),
        volume_uuid=dict(type='str'),
        read_only=dict(type='bool', default=True),
        source_paths=dict(type='list', elements='str', default=[]),
        lock_timeout=dict(type='int', default=120),
    )
    return spec


class _Ctx:
    """What ``_mounted.mount_volume`` reads of a run of vm_model_mount."""

    def __init__(self, params, desired, volume, host):
        self.params, self.desired, self.volume, self.host = params, desired, volume, host


def connection(params):
    """(desired, volume connection, normalized source paths) from the arguments; raises SpecError."""
    volume = params['volume']
    name = _spec.validate_volume_name(volume['name'])
    if not volume.get('meta_url'):
        raise _spec.SpecError('volume.meta_url', 'is required (or set AIMODEL_META_URL)')
    _spec.check_seconds('lock_timeout', params['lock_timeout'])
    meta_url, password, secrets = _spec.meta_connection(volume['meta_url'], volume.get('meta_password'))
    paths = dict((key, _spec.normalize_host_path(volume[key], 'volume.' + key) if volume.get(key) is not None else None)
                 for key in _spec.HOST_PATH_OPTIONS)
    sources = [_spec.normalize_source_path(p) for p in params['source_paths']]
    desired = {'model': name, 'volume': name, 'read_only': params['read_only'], 'volume_uuid': None}
    conn = {'meta_url': meta_url, 'password': password, 'secrets': secrets, 'mount_root': paths['mount_root'],
            'cache_dir': paths['cache_dir'], 'cache_size': volume.get('cache_size'), 'client_path': paths['client_path']}
    return desired, conn, sources


def check(params, desired, volume, host, check_mode):
    """The result: the volume proven (and mounted unless check mode), each source path found."""
    name, read_only = desired['volume'], desired['read_only']
    point = _juicefs.mountpoint(name, read_only, volume['mount_root'])
    state = host.status(point, name)
    if state == 'foreign':
        raise OperationFailed('%s is in use by something else (%s), not by volume %s' % (point, host.describe(point), name))
    if state == 'slow':
        raise OperationFailed('volume %s at %s does not answer statfs within %ss - it is slow or hung'
                              % (name, point, _juicefs.STATFS_TIMEOUT))
    try:
        client = host.find_client(volume['client_path'])
        found_name, uuid = host.engine_identity(client, volume['meta_url'], volume['password'])
    except _juicefs.VolumeError as exc:
        raise OperationFailed(str(exc), field='volume.meta_url')
    if found_name != name:
        raise OperationFailed('volume.name: the metadata engine at %s holds volume %s, not %s'
                              % (volume['meta_url'], found_name, name), field='volume.name')
    if params['volume_uuid'] and uuid != params['volume_uuid']:
        raise OperationFailed('volume_uuid: the metadata engine at %s holds volume %s with UUID %s, not %s'
                              % (volume['meta_url'], name, uuid, params['volume_uuid']), field='volume_uuid')
    desired['volume_uuid'] = uuid
    changed = state != 'mounted'
    if changed and check_mode:
        return dict(changed=True, point=point, volume_uuid=uuid, mounted=False, checked=[])
    if changed:
        _mounted.mount_volume(_Ctx(params, desired, volume, host), client, clear_dead=state == 'dead')
    else:
        found = host.mounted_identity(point)
        if found is None or found[1] != uuid:
            raise OperationFailed('volume.meta_url: the volume mounted at %s is not the volume %s (UUID %s)'
                                  % (point, name, uuid), field='volume.meta_url')
    checked = []
    for source in params['_sources']:
        _mounted.check_source(host, point, dict(desired, model=source, source_path=source))
        checked.append(source)
    return dict(changed=changed, point=point, volume_uuid=uuid, mounted=True, checked=checked)


def _read_file(path, limit):
    with open(path, 'rb') as handle:
        return handle.read(limit)


def virtiofs_migration(module):
    """``_migrate.host_support`` of this hypervisor, from the libvirt at uri."""
    if not _libvirt.HAS_LIBVIRT:
        raise OperationFailed(_libvirt.missing_binding_msg())
    conn = _libvirt.connect(module.params['uri'])
    try:
        return _migrate.host_support(conn.versions, os.listdir, _read_file,
                                     lambda argv: module.run_command(argv, environ_update={'LC_ALL': 'C'}))
    finally:
        conn.close()


def main():
    module = _options.Module(argument_spec())
    params = module.params
    if params['volume'] is None and not params['virtiofs_migration']:
        module.fail_json(msg='volume: is required unless virtiofs_migration is set', field='volume')
    try:
        _spec.validate_uri(params['uri'])
        if params['volume'] is not None:
            desired, volume, sources = connection(params)
            _hostpath.check_volume(volume)
    except _spec.SpecError as exc:
        module.fail_json(msg=str(exc), field=exc.field)
    result = dict(changed=False)
    if params['volume'] is not None:
        module.no_log_values.update(volume['secrets'])
        try:
            result = check(dict(params, _sources=sources), desired, volume, _juicefs.Host(module.run_command), module.check_mode)
        except AimodelError as exc:
            extra = dict(field=exc.field) if exc.field else {}
            module.fail_json(msg='volume %s on this host: %s' % (desired['volume'], exc), **extra)
    if params['virtiofs_migration']:
        try:
            result['virtiofs_migration'] = virtiofs_migration(module)
        except AimodelError as exc:
            module.fail_json(msg='virtiofs_migration: %s' % exc, field='virtiofs_migration')
    module.exit_json(**result)


if __name__ == '__main__':
    main()
