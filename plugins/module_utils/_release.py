# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A host volume mount that no VM of the hypervisor uses any more, unmounted (vm_model_volume_release).

A volume is mounted once per host and access mode, for all the host's VMs, and kept while any of them uses it:
a VM uses it when one of its records (live or persistent, detached ones too: the VM may mount them again) names
the volume at that mount point, and anything that still shows the volume's file system elsewhere in the host's
mount table (a model's bind in an export tree, an administrator's bind) uses it too: unmounting the volume's
mount point would leave that mount holding the client's file system without the client's mount point.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.aimodel.kvm.plugins.module_utils import _juicefs
from ansible_collections.aimodel.kvm.plugins.module_utils import _record
from ansible_collections.aimodel.kvm.plugins.module_utils._mountinfo import visible_at


def domain_records(domain):
    """Every record of the domain, live (when it runs) and persistent (when it has a configuration)."""
    records = []
    sides = ([False] if domain.is_active() else []) + ([True] if domain.is_persistent() else [])
    for config in sides:
        records.extend(_record.parse(domain.get_metadata(config=config)).values())
    return records


def record_users(domains, name, read_only, root):
    """The VMs (sorted names) whose records use volume ``name`` at the mount point of (read_only, root)."""
    point = _juicefs.mountpoint(name, read_only, root)
    users = set()
    for domain in domains:
        for rec in domain_records(domain):
            if rec.get('volume') == name and bool(rec.get('read_only', True)) == read_only and \
                    _juicefs.mountpoint(name, read_only, rec.get('mount_root')) == point:
                users.add(domain.name)
    return sorted(users)


def mount_users(mounts, point):
    """The other mounts of the file system mounted at point (same device), by mount point; None when nothing of
    the volume's client is mounted at point."""
    entry = visible_at(mounts, point)
    if entry is None or entry['fstype'] != _juicefs.FSTYPE:
        return None
    return sorted(m['target'] for m in mounts if m['dev'] == entry['dev'] and m['id'] != entry['id'])


def plan(domains, mounts, name, read_only, root):
    """(point, why it is kept - a list, empty when it can go -, whether it is mounted)."""
    point = _juicefs.mountpoint(name, read_only, root)
    others = mount_users(mounts, point)
    if others is None:
        return point, [], False
    why = ['VM %s' % vm for vm in record_users(domains, name, read_only, root)]
    why.extend('a mount of it at %s' % target for target in others)
    return point, why, True
