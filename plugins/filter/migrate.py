# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters of the playbooks migrate_vm and evacuate: the URIs of a migration, the checks and the mounts a VM's
records ask of its destination, and the way the VM moves. Pure functions (no I/O) that unit tests reach."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible.errors import AnsibleFilterError

from ansible_collections.aimodel.kvm.plugins.module_utils import _migrate
from ansible_collections.aimodel.kvm.plugins.module_utils._spec import SpecError

# The keys of an inventory volume (model_mounts_volumes) that the modules' volume option takes.
VOLUME_KEYS = ('meta_url', 'meta_password', 'mount_root', 'cache_dir', 'cache_size', 'client_path')
MODES = ('auto', 'native', 'detach')


def migrate_uris(host_vars, name, data_uri=''):
    """The libvirt URI the controller reaches a hypervisor at, and the migration data URI its QEMU listens on:
    the host's aimodel_migrate_uri and aimodel_migrate_data_uri when set, else built from ansible_host (else the
    inventory name), ansible_user and ansible_port (for SSH). ``data_uri`` (the extra variable migrate_data_uri)
    may choose another port of that same data address, never another host: the memory of the guest goes there.
    All validated; an error names the variable."""
    host_vars = host_vars or {}
    address = host_vars.get('ansible_host') or name
    try:
        if host_vars.get('aimodel_migrate_uri'):
            uri = _migrate.validate_destination_uri(host_vars['aimodel_migrate_uri'], 'aimodel_migrate_uri')
        else:
            port = host_vars.get('ansible_port')
            uri = _migrate.destination_uri(address, host_vars.get('ansible_user'), port if port not in (None, 22, '22') else None)
        if host_vars.get('aimodel_migrate_data_uri'):
            data = _migrate.validate_data_uri(host_vars['aimodel_migrate_data_uri'], 'aimodel_migrate_data_uri')
        else:
            data = _migrate.data_uri(address)
        if data_uri:
            own = _migrate.data_uri_host(data)
            if _migrate.data_uri_host(data_uri, 'migrate_data_uri') != own:
                raise SpecError('migrate_data_uri', '%r is not an address of %s, whose migration address is %s (set '
                                                    'aimodel_migrate_data_uri in the inventory for another one)'
                                % (data_uri, name, own))
            data = data_uri
    except SpecError as exc:
        raise AnsibleFilterError('hypervisor %s: %s' % (name, exc))
    return {'libvirt': uri, 'data': data}


# What an extra variable (migrate_volumes, from a survey) may give of a volume: nothing that acts on the host (its
# engine, where it is mounted, the client run, its cache directory), which only the inventory sets.
EXTRA_VOLUME_KEYS = ('meta_password', 'cache_size')


def migrate_host_volumes(host_vars, extra=None):
    """The volumes (by name) a hypervisor mounts models from: its inventory's model_mounts_volumes, else the extra
    variable migrate_volumes, which may only give each volume its meta_password and cache_size."""
    inventory = (host_vars or {}).get('model_mounts_volumes')
    if inventory:
        return inventory
    if not extra:
        return {}
    if not isinstance(extra, dict):
        raise AnsibleFilterError('migrate_volumes: a mapping of volume names to settings, got %s' % type(extra).__name__)
    for name, settings in extra.items():
        if not isinstance(settings, dict):
            raise AnsibleFilterError('migrate_volumes.%s: a mapping of settings, got %s' % (name, type(settings).__name__))
        for key in settings:
            if key not in EXTRA_VOLUME_KEYS:
                raise AnsibleFilterError('migrate_volumes.%s.%s: only %s may come from an extra variable; the settings '
                                         'that act on the host come from the inventory (model_mounts_volumes)'
                                         % (name, key, ' and '.join(EXTRA_VOLUME_KEYS)))
    return extra


def migrate_volume_args(record, volumes):
    """The volume option for a record's volume on one hypervisor: the record's name and mount_root, and with what
    that hypervisor's volume of that name gives (``volumes``: migrate_host_volumes): its password, cache and client,
    and its meta_url, which is how that host reaches the engine, else the record's (kept without a password). The
    record's volume_uuid still has to match, whatever URL reaches it."""
    inventory = (volumes or {}).get(record['volume']) or {}
    args = {'name': record['volume']}
    for key in ('meta_url', 'mount_root'):
        if record.get(key):
            args[key] = record[key]
    args.update((k, v) for k, v in inventory.items() if k in VOLUME_KEYS and v not in (None, '') and k != 'mount_root')
    return args


def migrate_checks(records):
    """One item per volume (name and UUID), access mode and mount root of the records, with the model directories
    it must hold: volume (the record's volume, meta_url and mount_root, which migrate_volume_args completes: no
    secret, since Ansible returns each item with its result), volume_uuid, read_only, source_paths."""
    checks, index = [], {}
    for rec in records or []:
        key = (rec['volume'], rec.get('volume_uuid'), bool(rec.get('read_only', True)), rec.get('mount_root'))
        if key not in index:
            index[key] = len(checks)
            volume = dict((k, rec[k]) for k in ('volume', 'meta_url', 'mount_root') if rec.get(k))
            checks.append({'volume': volume, 'volume_uuid': rec.get('volume_uuid'), 'read_only': key[2], 'source_paths': []})
        paths = checks[index[key]]['source_paths']
        if rec['source_path'] not in paths:
            paths.append(rec['source_path'])
    return checks


def migrate_detach_args(records):
    """The mounts option of vm_model_mounts that detaches every recorded model (their records kept)."""
    return [{'model': rec['model'], 'state': 'detached'} for rec in records or []]


def migrate_new_devices(mounts):
    """The devices the records need that the running VM does not have (vm_model_mount_info's mounts: a shared
    device by its name, a model's own device by its tag), sorted: each takes a hot-plug slot when the models are
    mounted from the records; a device the VM has keeps the slot it frees on a detach."""
    live, needed = set(), set()
    for entry in mounts or []:
        device = entry.get('device') or entry['tag']
        needed.add(device)
        if entry.get('device_live'):
            live.add(device)
    return sorted(needed - live)


def migrate_mode(source, destination, wanted='auto'):
    """How the VM moves: ``native`` (virtiofs migrates with it) when both hypervisors can (the
    virtiofs_migration results of vm_model_host_check) and wanted is auto or native, else ``detach`` (the models
    out, the VM moved, the models mounted again); wanted=native on a stack that cannot is an error saying why."""
    if wanted not in MODES:
        raise AnsibleFilterError('migrate_mode: %r is not one of %s' % (wanted, ', '.join(MODES)))
    mode, reasons = _migrate.migration_mode((bool(source.get('native')), source.get('reasons') or []),
                                            (bool(destination.get('native')), destination.get('reasons') or []))
    if wanted == 'native' and mode != 'native':
        raise AnsibleFilterError('migrate_mode: native, but virtiofs cannot migrate natively: %s' % '; '.join(reasons))
    return 'detach' if wanted == 'detach' else mode


class FilterModule(object):
    """The filters of the playbooks migrate_vm and evacuate."""

    def filters(self):
        return {
            'migrate_uris': migrate_uris,
            'migrate_host_volumes': migrate_host_volumes,
            'migrate_volume_args': migrate_volume_args,
            'migrate_new_devices': migrate_new_devices,
            'migrate_checks': migrate_checks,
            'migrate_detach_args': migrate_detach_args,
            'migrate_mode': migrate_mode,
        }
