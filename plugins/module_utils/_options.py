# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The options both modules share, with one meaning and one default, so that one ``module_defaults`` entry of the
action group (``group/aimodel.kvm.kvm``) serves both; and the module class both run as."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.aimodel.kvm.plugins.module_utils import _juicefs
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _spec

# Seconds for one guest agent call, and for one guest command to finish: a mount's guest commands (mount, the
# fstab's rewrite) must finish within it on a guest under TCG emulation too.
AGENT_TIMEOUT = 30

# The names of the VM option: community.libvirt names the VM ``name`` (alias ``guest``).
VM_ALIASES = ['name', 'guest']


def shared(required):
    """The argument spec of uri, vm, volume and agent_timeout. ``required``: vm_model_mount needs the VM, and the
    volume's name when a volume is given; vm_model_mount_info needs neither (it reports every VM, and every
    volume's mounts)."""
    return dict(
        uri=_libvirt.uri_option(),
        vm=dict(type='str', required=required, aliases=VM_ALIASES),
        volume=dict(type='dict', options=dict(
            name=dict(type='str', required=required),
            # Not no_log as a whole: the URL without its password is the volume's identity, returned in the record;
            # the password inside it is masked (see Module).
            meta_url=dict(type='str', no_log=False, fallback=(env_fallback, ['AIMODEL_META_URL'])),
            meta_password=dict(type='str', no_log=True, fallback=(env_fallback, ['AIMODEL_META_PASSWORD'])),
            mount_root=dict(type='path', default=_juicefs.DEFAULT_MOUNT_ROOT),
            cache_dir=dict(type='path'),
            cache_size=dict(type='int'),
            client_path=dict(type='path'),
        )),
        agent_timeout=dict(type='int', default=AGENT_TIMEOUT),
    )


def model_options():
    """The options of one model's mount: vm_model_mount's own, and each entry of vm_model_mounts' mounts."""
    return dict(
        model=dict(type='str', required=True),
        source_path=dict(type='str'),
        mount_path=dict(type='str'),
        read_only=dict(type='bool', default=True),
        state=dict(type='str', default='mounted', choices=['mounted', 'absent', 'detached']),
    )


def run_options():
    """The options of a run, one value for all its models (doc fragment aimodel.kvm.run_options)."""
    return dict(
        persist=dict(type='bool', default=True),
        guest_mount=dict(type='bool', default=True),
        force=dict(type='bool', default=False),
        warmup=dict(type='bool', default=False),
        cache=dict(type='str', default='auto', choices=['auto', 'always']),
        read_ahead_kb=dict(type='int', default=1024),
        lock_timeout=dict(type='int', default=120),
        guest_timeout=dict(type='int', default=300),
        device_timeout=dict(type='int', default=60),
    )


class Module(AnsibleModule):
    """An AnsibleModule that supports check mode, masks a password inside ``volume.meta_url`` in what it returns,
    and names the dict option in ansible-core's error for a value that is not a dict ("dictionary requested,
    could not parse JSON or key=value"): volume is the only dict option."""

    def __init__(self, argument_spec):
        super(Module, self).__init__(argument_spec=argument_spec, supports_check_mode=True)
        for secret in _spec.url_secrets((self.params.get('volume') or {}).get('meta_url')):
            self.no_log_values.add(secret)

    def fail_json(self, msg=None, **kwargs):  # pylint: disable=arguments-differ
        if isinstance(msg, str) and msg.startswith('dictionary requested'):
            msg = 'volume: must be a dictionary (name, meta_url, ...): %s' % msg
        super(Module, self).fail_json(msg=msg, **kwargs)
