# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vm_model_host_check: the destination of a migration proves it can serve the recorded models."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible.module_utils import basic

from ansible_collections.aimodel.kvm.plugins.module_utils import _migrate
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


def descriptors(monkeypatch, tmp_path, text):
    directory = tmp_path / 'vhost-user'
    directory.mkdir()
    (directory / '50-virtiofsd.json').write_text(text)
    monkeypatch.setattr(_migrate, 'DESCRIPTOR_DIRS', (str(tmp_path / 'none'), str(directory)))


def fake_virtiofsd(monkeypatch, version, help_text):
    calls = []

    def run_command(_self, argv, **_kwargs):
        calls.append(list(argv))
        return 0, version if argv[-1] == '--version' else help_text, ''
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', run_command)
    return calls


def test_virtiofs_migration_alone_reports_this_lab(domain, run_module, monkeypatch, tmp_path):
    descriptors(monkeypatch, tmp_path, '{"type": "fs", "binary": "/usr/lib/qemu/virtiofsd"}')
    calls = fake_virtiofsd(monkeypatch, 'virtiofsd version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n', 'usage: virtiofsd')
    result = run_module(vm_model_host_check, {'virtiofs_migration': True})
    assert result['changed'] is False and 'point' not in result, result
    support = result['virtiofs_migration']
    assert support['native'] is False and support['libvirt'] == '9.0.0' and support['qemu'] == '7.2.15'
    assert support['virtiofsd_binary'] == '/usr/lib/qemu/virtiofsd' and support['precopy'] is False
    assert 'libvirt 9.0.0 is older than 10.6.0' in support['reasons']
    assert calls == [['/usr/lib/qemu/virtiofsd', '--version'], ['/usr/lib/qemu/virtiofsd', '--help']]


def test_virtiofs_migration_with_the_volume(domain, host, run_module, monkeypatch, tmp_path):
    descriptors(monkeypatch, tmp_path, '{"type": "fs", "binary": "/usr/libexec/virtiofsd", "features": ["migrate-precopy"]}')
    fake_virtiofsd(monkeypatch, 'virtiofsd 1.13.3\n', '--migration-mode <MODE>')
    result = run_module(vm_model_host_check, dict(ARGS, virtiofs_migration=True))
    assert result['mounted'] is True and result['checked'] == ['models/m1', 'models/m2'], result
    # The versions of the fake libvirt (9.0, 7.2) are too old; the descriptor and virtiofsd would do.
    assert result['virtiofs_migration']['precopy'] is True
    assert result['virtiofs_migration']['reasons'] == ['libvirt 9.0.0 is older than 10.6.0', 'QEMU 7.2.15 is older than 8.2.0']


def test_neither_volume_nor_virtiofs_migration_is_refused(run_module):
    result = run_module(vm_model_host_check, {})
    assert result['failed'] and result['field'] == 'volume' and 'virtiofs_migration' in result['msg']


def test_a_remote_uri_is_refused(run_module):
    result = run_module(vm_model_host_check, {'virtiofs_migration': True, 'uri': 'qemu+ssh://hv9/system'})
    assert result['failed'] and result['field'] == 'uri'
