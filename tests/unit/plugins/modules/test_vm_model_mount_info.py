# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vm_model_mount_info through its main(), on the fake domain and host volume of conftest."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.aimodel.kvm.plugins.modules import vm_model_mount
from ansible_collections.aimodel.kvm.plugins.modules import vm_model_mount_info
from ansible_collections.aimodel.kvm.tests.unit.plugins.modules.test_vm_model_mount import ARGS


def test_info_of_a_missing_vm_is_empty(domain, host, run_module):
    result = run_module(vm_model_mount_info, {'vm': 'no-such-vm'})
    assert result['mounts'] == [] and result['orphans'] == [] and result['vms'] == []
    assert result['changed'] is False


def test_info_reports_a_fresh_mount_as_mounted(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    result = run_module(vm_model_mount_info, {})
    assert [(m['vm'], m['model'], m['status'], m['reasons']) for m in result['mounts']] == [('vm1', 'm1', 'mounted', [])]
    assert result['vms'][0]['guest_reachable'] is True and result['orphans'] == []


def test_info_reports_readahead_drift(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    mount = [m for m in domain.guest.mounts if m[2] == 'virtiofs'][-1]
    domain.guest.files['/sys/class/bdi/%s/read_ahead_kb' % domain.guest.mount_dev(mount)] = '128\n'
    entry = run_module(vm_model_mount_info, {'vm': 'vm1'})['mounts'][0]
    assert entry['guest_read_ahead_kb'] == 128 and entry['reasons'] == ['read_ahead_differs']
    assert entry['status'] == 'degraded'
    run_module(vm_model_mount, ARGS)
    entry = run_module(vm_model_mount_info, {'vm': 'vm1'})['mounts'][0]
    assert entry['guest_read_ahead_kb'] == 1024 and entry['status'] == 'mounted'
