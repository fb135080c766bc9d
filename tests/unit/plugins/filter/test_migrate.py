# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The filters of the playbooks migrate_vm and evacuate."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.aimodel.kvm.plugins.filter import migrate

REC = {'model': 'a', 'volume': 'models', 'volume_uuid': 'u1', 'meta_url': 'redis://10.0.0.5:6379/1',
       'source_path': 'models/a', 'read_only': True, 'mount_root': '/srv/volumes'}
VOLUMES = {'models': {'meta_url': 'redis://other:6379/1', 'meta_password': 'pw', 'mount_root': '/elsewhere',
                      'cache_size': 1024, 'client_path': None}}
NATIVE = {'native': True, 'reasons': []}
OLD = {'native': False, 'reasons': ['libvirt 9.0.0 is older than 10.6.0']}


def test_uris_from_the_inventory():
    assert migrate.migrate_uris({'ansible_host': '198.18.0.12', 'ansible_user': 'root'}, 'hv2') == \
        {'libvirt': 'qemu+ssh://root@198.18.0.12/system', 'data': 'tcp://198.18.0.12'}
    assert migrate.migrate_uris({'ansible_port': 2222}, 'hv2') == {'libvirt': 'qemu+ssh://hv2:2222/system', 'data': 'tcp://hv2'}
    assert migrate.migrate_uris({'aimodel_migrate_uri': 'qemu+ssh://hv2.mgmt/system',
                                 'aimodel_migrate_data_uri': 'tcp://10.1.0.2:49152'}, 'hv2') == \
        {'libvirt': 'qemu+ssh://hv2.mgmt/system', 'data': 'tcp://10.1.0.2:49152'}


@pytest.mark.parametrize('host_vars, field', [
    ({'aimodel_migrate_uri': 'qemu+ssh://hv2/system?socket=/tmp/x'}, 'aimodel_migrate_uri'),
    ({'aimodel_migrate_uri': 'qemu:///system'}, 'aimodel_migrate_uri'),
    ({'aimodel_migrate_data_uri': 'unix:///tmp/s'}, 'aimodel_migrate_data_uri'),
    ({'ansible_host': 'hv2 -oProxyCommand=x'}, 'destination_uri'),
])
def test_a_bad_uri_names_its_variable(host_vars, field):
    with pytest.raises(AnsibleFilterError) as err:
        migrate.migrate_uris(host_vars, 'hv2')
    assert str(err.value).startswith('hypervisor hv2: %s: ' % field)


def test_a_data_uri_from_an_extra_variable_keeps_the_destinations_host():
    host_vars = {'ansible_host': '198.18.0.12'}
    assert migrate.migrate_uris(host_vars, 'hv2', 'tcp://198.18.0.12:49200')['data'] == 'tcp://198.18.0.12:49200'
    assert migrate.migrate_uris(host_vars, 'hv2', '')['data'] == 'tcp://198.18.0.12'
    assert migrate.migrate_uris({'aimodel_migrate_data_uri': 'tcp://10.1.0.2:49152'}, 'hv2', 'tcp://10.1.0.2:50000')['data'] == \
        'tcp://10.1.0.2:50000'
    v6 = migrate.migrate_uris({'ansible_host': 'fd00::12'}, 'hv2', 'tcp://[FD00::12]:49200')
    assert v6 == {'libvirt': 'qemu+ssh://[fd00::12]/system', 'data': 'tcp://[FD00::12]:49200'}
    for bad in ('tcp://203.0.113.9:4444', 'tcp://198.18.0.13', '--dname=x', 'tcp://198.18.0.12:0', 'unix:///tmp/s'):
        with pytest.raises(AnsibleFilterError) as err:
            migrate.migrate_uris(host_vars, 'hv2', bad)
        assert str(err.value).startswith('hypervisor hv2: migrate_data_uri: '), bad


def test_host_volumes_come_from_the_inventory_and_an_extra_variable_gives_only_secrets():
    assert migrate.migrate_host_volumes({'model_mounts_volumes': VOLUMES}, {'models': {'meta_url': 'x'}}) == VOLUMES
    assert migrate.migrate_host_volumes({}, None) == {}
    extra = {'models': {'meta_password': 'pw', 'cache_size': 10}}
    assert migrate.migrate_host_volumes({}, extra) == extra
    for key in ('meta_url', 'mount_root', 'cache_dir', 'client_path'):
        with pytest.raises(AnsibleFilterError) as err:
            migrate.migrate_host_volumes({}, {'models': {key: '/x'}})
        assert str(err.value).startswith('migrate_volumes.models.%s: ' % key)
    with pytest.raises(AnsibleFilterError):
        migrate.migrate_host_volumes({}, {'models': 'pw'})


def test_volume_args_keep_the_records_root_and_take_the_hosts_engine_url_and_secrets():
    assert migrate.migrate_volume_args(REC, VOLUMES) == {'name': 'models', 'meta_url': 'redis://other:6379/1',
                                                         'mount_root': '/srv/volumes', 'meta_password': 'pw',
                                                         'cache_size': 1024}
    assert migrate.migrate_volume_args(REC, {}) == {'name': 'models', 'meta_url': 'redis://10.0.0.5:6379/1',
                                                    'mount_root': '/srv/volumes'}


def test_checks_one_per_volume_mode_and_root():
    records = [REC, dict(REC, model='b', source_path='models/b'), dict(REC, model='c'),
               dict(REC, model='d', read_only=False), dict(REC, model='e', volume_uuid='u2')]
    checks = migrate.migrate_checks(records)
    assert [(c['volume']['volume'], c['volume_uuid'], c['read_only'], c['source_paths']) for c in checks] == [
        ('models', 'u1', True, ['models/a', 'models/b']), ('models', 'u1', False, ['models/a']),
        ('models', 'u2', True, ['models/a'])]
    assert migrate.migrate_checks([]) == []
    # No secret in an item: the record's volume name, engine URL (kept without a password) and mount root only.
    assert checks[0]['volume'] == {'volume': 'models', 'meta_url': 'redis://10.0.0.5:6379/1', 'mount_root': '/srv/volumes'}
    assert migrate.migrate_volume_args(checks[0]['volume'], VOLUMES)['meta_password'] == 'pw'


def test_detach_args():
    assert migrate.migrate_detach_args([REC, dict(REC, model='b')]) == [{'model': 'a', 'state': 'detached'},
                                                                        {'model': 'b', 'state': 'detached'}]


def test_new_devices():
    shared = dict(REC, device='aimodel-ro', tag='t-a', device_live=True)
    assert migrate.migrate_new_devices([]) == []
    assert migrate.migrate_new_devices([shared, dict(shared, model='b', tag='t-b')]) == []
    # One record of a shared device reports it live: the device is there for all of them.
    assert migrate.migrate_new_devices([dict(shared, device_live=False), dict(shared, model='b', tag='t-b')]) == []
    # A shared device missing, a detached record's own device, one of each counted once.
    own = dict(REC, model='c', device=None, tag='t-c', device_live=False)
    gone = dict(shared, device='aimodel-rw', device_live=False)
    assert migrate.migrate_new_devices([shared, gone, dict(gone, model='d', tag='t-d'), own]) == ['aimodel-rw', 't-c']


def test_mode():
    assert migrate.migrate_mode(NATIVE, NATIVE) == 'native'
    assert migrate.migrate_mode(NATIVE, NATIVE, 'detach') == 'detach'
    assert migrate.migrate_mode(OLD, NATIVE) == 'detach'
    assert migrate.migrate_mode(NATIVE, OLD, 'auto') == 'detach'
    with pytest.raises(AnsibleFilterError) as err:
        migrate.migrate_mode(NATIVE, OLD, 'native')
    assert 'destination: libvirt 9.0.0 is older than 10.6.0' in str(err.value)
    with pytest.raises(AnsibleFilterError):
        migrate.migrate_mode(NATIVE, NATIVE, 'fast')
