# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vm_model_host_check: the destination of a migration proves it can serve the recorded models."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.aimodel.kvm.plugins.modules import vm_model_host_check
from ansible_collections.aimodel.kvm.tests.unit.plugins.fakes import FAKE_IDENTITY

POINT = '/var/lib/aimodel/volumes/labvol/ro'
ARGS = {'volume': {'name': 'labvol', 'meta_url': 'redis://:s3cr3t-pw@127.0.0.1:16379/1'},
        'source_paths': ['models/m1', '/models/m2/']}


def test_mounts_the_volume_and_finds_the_models(host, run_module):
    result = run_module(vm_model_host_check, ARGS)
    assert result['changed'] is True and result['mounted'] is True, result
    assert result['point'] == POINT and result['checked'] == ['models/m1', 'models/m2']
    assert result['volume_uuid'] == FAKE_IDENTITY[1]
    assert host.mount_calls[0]['password'] == 's3cr3t-pw' and 's3cr3t-pw' not in str(result)
    again = run_module(vm_model_host_check, ARGS)
    assert again['changed'] is False and len(host.mount_calls) == 1


def test_check_mode_mounts_nothing(host, run_module):
    result = run_module(vm_model_host_check, ARGS, check=True)
    assert result['changed'] is True and result['mounted'] is False and result['checked'] == []
    assert host.mount_calls == []


def test_a_missing_model_directory_fails_naming_it(host, run_module):
    result = run_module(vm_model_host_check, dict(ARGS, source_paths=['models/nope']))
    assert result['failed'] and 'models/nope' in result['msg'] and result['field'] == 'source_path'


def test_another_volume_uuid_fails_before_mounting(host, run_module):
    result = run_module(vm_model_host_check, dict(ARGS, volume_uuid='1c1c1c1c-0000-4000-8000-000000000000'))
    assert result['failed'] and result['field'] == 'volume_uuid' and host.mount_calls == []


def test_a_foreign_mount_point_fails(host, run_module):
    host.state[POINT] = 'foreign'
    result = run_module(vm_model_host_check, ARGS)
    assert result['failed'] and 'in use by something else' in result['msg']


def test_bad_input_names_the_option(host, run_module):
    result = run_module(vm_model_host_check, dict(ARGS, source_paths=['../etc']))
    assert result['failed'] and result['field'] == 'source_path'
    result = run_module(vm_model_host_check, {'volume': {'name': 'labvol'}})
    assert result['failed'] and result['field'] == 'volume.meta_url'
