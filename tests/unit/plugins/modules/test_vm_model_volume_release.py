# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vm_model_volume_release: a host volume that no VM uses any more is unmounted; one in use is kept, saying why."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import pytest

from ansible_collections.aimodel.kvm.plugins.module_utils import _juicefs
from ansible_collections.aimodel.kvm.plugins.modules import vm_model_mount
from ansible_collections.aimodel.kvm.plugins.modules import vm_model_volume_release
from ansible_collections.aimodel.kvm.tests.unit.plugins.modules.test_vm_model_mount import ABSENT, ARGS

RO = '/var/lib/aimodel/volumes/labvol/ro'
RW = '/var/lib/aimodel/volumes/labvol/rw'
BIND = '/var/lib/aimodel/exports/other/ro/aim-x'


def table(monkeypatch, *mounts):
    """The host's mount table: (id, dev, target, fstype)."""
    rows = [{'id': i, 'dev': dev, 'root': '/', 'source': 'JuiceFS:labvol', 'target': target, 'fstype': fstype,
             'options': ['rw'], 'propagation': [], 'super_options': []} for i, dev, target, fstype in mounts]
    monkeypatch.setattr(_juicefs, 'host_mounts', lambda path=None: rows)


@pytest.fixture
def release(run_module):
    def run(check=False, **extra):
        return run_module(vm_model_volume_release, dict({'volume': {'name': 'labvol'}}, **extra), check=check)
    return run


def test_a_volume_a_vm_records_is_kept(domain, host, run_module, release, monkeypatch):
    run_module(vm_model_mount, ARGS)
    table(monkeypatch, ('10', '0:50', RO, 'fuse.juicefs'))
    result = release(read_only=True)
    assert result['changed'] is False and result['released'] == [], result
    assert result['kept'] == [{'point': RO, 'users': ['VM vm1']}] and host.unmounted == []


def test_a_detached_record_keeps_it_too(domain, host, run_module, release, monkeypatch):
    run_module(vm_model_mount, ARGS)
    run_module(vm_model_mount, dict(ABSENT, state='detached'))
    table(monkeypatch, ('10', '0:50', RO, 'fuse.juicefs'))
    assert release(read_only=True)['kept'] == [{'point': RO, 'users': ['VM vm1']}]


def test_an_unused_volume_is_unmounted_both_modes(domain, host, run_module, release, monkeypatch):
    run_module(vm_model_mount, ARGS)
    run_module(vm_model_mount, ABSENT)
    table(monkeypatch, ('10', '0:50', RO, 'fuse.juicefs'), ('11', '0:51', RW, 'fuse.juicefs'))
    checked = release(check=True)
    assert checked['changed'] is True and checked['released'] == [RO, RW] and host.unmounted == []
    result = release()
    assert result['changed'] is True and result['released'] == [RO, RW] and result['kept'] == []
    assert host.unmounted == [RO, RW]


def test_another_mount_of_its_file_system_keeps_it(domain, host, release, monkeypatch):
    table(monkeypatch, ('10', '0:50', RO, 'fuse.juicefs'), ('12', '0:50', BIND, 'fuse.juicefs'),
          ('13', '0:77', '/srv/other', 'ext4'))
    result = release(read_only=True)
    assert result['kept'] == [{'point': RO, 'users': ['a mount of it at %s' % BIND]}] and host.unmounted == []


def test_nothing_mounted_is_nothing_to_do(domain, host, release, monkeypatch):
    table(monkeypatch, ('13', '0:77', RO, 'ext4'))
    result = release()
    assert result == dict(changed=False, released=[], kept=[]) and host.unmounted == []


def test_a_busy_mount_fails_and_stays(domain, host, release, monkeypatch):
    table(monkeypatch, ('10', '0:50', RO, 'fuse.juicefs'))
    host.fail_unmount = 'target is busy'
    result = release(read_only=True)
    assert result['failed'] and 'target is busy' in result['msg'] and RO in result['msg']


@pytest.mark.parametrize('args, field', [
    ({'volume': {'name': '../etc'}}, 'volume.name'),
    ({'volume': {'name': 'labvol', 'mount_root': 'relative'}}, 'volume.mount_root'),
    ({'volume': {'name': 'labvol'}, 'uri': 'qemu+ssh://hv9/system'}, 'uri'),
    ({'volume': {'name': 'labvol'}, 'lock_timeout': 0}, 'lock_timeout'),
])
def test_bad_arguments_name_their_field(domain, host, run_module, args, field):
    result = run_module(vm_model_volume_release, args)
    assert result['failed'] and result['field'] == field and host.unmounted == []
