# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The truth per mount that vm_model_mount_info reports, from the read model."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import pytest

from ansible_collections.aimodel.kvm.plugins.module_utils import _export
from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _info
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _record
from ansible_collections.aimodel.kvm.plugins.module_utils import _state
from ansible_collections.aimodel.kvm.tests.unit.plugins.fakes import RECORD, guest_run, legacy_domain, mounted_domain

POINT = '/var/lib/aimodel/volumes/v/ro'


def report(dom, host_volumes=None):
    return _info.report(_state.VmState(dom, _guest.Agent(dom)), 'vm1', host_volumes)


def test_report_statuses():
    dom = mounted_domain()
    dom.config = dom.config + [('aim-stray-2', '/other')]
    entries, orphans = report(dom)
    assert entries[0]['status'] == 'mounted' and entries[0]['reasons'] == []
    assert entries[0]['layout'] == 'shared_device' and entries[0]['in_fstab'] is True
    assert entries[0]['device_live'] is True and entries[0]['device_config'] is True
    assert entries[0]['tuning']['guest_read_ahead_kb'] == 1024 and entries[0]['host_pinned'] is None
    assert orphans == [{'vm': 'vm1', 'kind': 'device_without_record', 'where': 'config', 'tag': 'aim-stray-2',
                        'model': None, 'source': '/other'}]
    # After a reboot without the fstab lines: the device is there, the guest's bind is not.
    guest_run(dom, ['umount', '/mnt/m'])
    entries, _orphans = report(dom)
    assert entries[0]['status'] == 'degraded' and 'not_mounted_in_guest' in entries[0]['reasons']
    assert entries[0]['guest_mounted'] is False
    dom.guest.reachable = False
    entries, _orphans = report(dom)
    assert 'guest_unreachable' in entries[0]['reasons'] and entries[0]['guest_mounted'] is None
    dom.active = False
    entries, _orphans = report(dom)
    assert entries[0]['status'] == 'pending' and entries[0]['reasons'] == ['vm_stopped']


def test_a_shared_device_without_a_record_is_an_orphan():
    dom = mounted_domain()
    dom.attach(_libvirt.filesystem_xml(_export.view_dir(dom.uuid, 'rw'), 'aimodel-rw'), True, False)
    dom.attach(_libvirt.filesystem_xml('/x', 'someone-elses'), True, False)
    _entries, orphans = report(dom)
    assert orphans == [{'vm': 'vm1', 'kind': 'device_without_record', 'where': 'live', 'tag': 'aimodel-rw',
                        'model': None, 'source': _export.view_dir(dom.uuid, 'rw')}]


def test_report_readahead_is_that_of_the_base_mount():
    dom = mounted_domain()
    base = dom.guest.visible('/run/aimodel/ro')
    dom.guest.files[_guest.READ_AHEAD % base['dev']] = '128\n'
    entries, _orphans = report(dom)
    assert entries[0]['tuning']['guest_read_ahead_kb'] == 128 and entries[0]['tuning']['differs'] is True
    assert entries[0]['reasons'] == [] and entries[0]['status'] == 'mounted'
    dom.guest.files[_guest.READ_AHEAD % base['dev']] = '1024\n'
    entries, _orphans = report(dom)
    assert entries[0]['tuning']['guest_read_ahead_kb'] == 1024 and entries[0]['tuning']['differs'] is False
    # A second model on the device asks for more: the device's target is the largest.
    records = {'m': dict(RECORD), 'n': dict(RECORD, model='n', tag='aim-n-1', mount_path='/mnt/n', read_ahead_kb=4096)}
    dom.meta['live'] = _record.render(records)
    entries, _orphans = report(dom)
    assert entries[0]['tuning']['read_ahead_kb'] == 4096 and entries[0]['tuning']['differs'] is True
    assert _info.read_ahead_target(_state.VmState(dom, _guest.Agent(dom)), records['m']) == 4096


def test_report_fstab_needs_the_base_and_the_bind_line():
    dom = mounted_domain()
    dom.guest.files['/etc/fstab'] = _guest.fstab_without(dom.guest.files['/etc/fstab'], 'aimodel-ro')
    entries, _orphans = report(dom)
    assert entries[0]['in_fstab'] is False and entries[0]['reasons'] == ['fstab_missing']


def test_report_stale_mount_and_record_without_device():
    dom = mounted_domain()
    dom.guest.stale.add('/mnt/m')
    entries, orphans = report(dom)
    assert entries[0]['status'] == 'degraded' and entries[0]['reasons'] == ['stale_guest_mount']
    assert entries[0]['guest_mounted'] is True and entries[0]['guest_accessible'] is False
    assert orphans == []
    dom.live, dom.config = [], []
    entries, orphans = report(dom)
    assert set(entries[0]['reasons']) >= set(['device_missing_live', 'device_missing_config'])
    assert orphans[0]['kind'] == 'record_without_device' and orphans[0]['model'] == 'm'


def test_report_dead_backend_is_not_probed():
    dom = mounted_domain()
    dom.dead_backends.add('aimodel-ro')
    entries, _orphans = report(dom)
    assert entries[0]['reasons'] == ['device_backend_dead'] and entries[0]['guest_accessible'] is None
    assert not [a for a in dom.guest.argvs if a[0] == 'stat']


def test_report_a_model_of_the_earlier_layout():
    dom = legacy_domain()
    entries, orphans = report(dom)
    assert entries[0]['layout'] == 'own_device' and entries[0]['status'] == 'mounted', entries[0]
    assert entries[0]['device_live'] is True and entries[0]['guest_mounted'] is True and entries[0]['in_fstab'] is True
    assert orphans == []


@pytest.fixture
def pinned(host):
    """mounted_domain with its host side: the volume mounted, model m pinned into the VM's export tree."""
    dom = mounted_domain()
    dom.host = host
    host.state[POINT] = 'mounted'
    host.dirs.add(POINT + '/models/m')
    host.pin(dom.uuid, 'ro', 'aim-m-1', POINT, 'models/m', True)
    return dom, _state.HostVolumes(host, '/var/lib/aimodel/volumes')


def test_report_the_host_side(pinned, host):
    dom, volumes = pinned
    entries, orphans = report(dom, volumes)
    assert entries[0]['host_pinned'] == 'pinned' and entries[0]['reasons'] == [] and orphans == []


@pytest.mark.parametrize('how, reason', [('missing', 'not_pinned'), ('stale', 'pin_stale'), ('dead', 'pin_dead')])
def test_report_a_pin_that_is_not_what_the_record_says(pinned, host, how, reason):
    dom, volumes = pinned
    if how == 'missing':
        host.unpin(dom.uuid, 'ro', 'aim-m-1')
    else:
        host.binds[(dom.uuid, 'ro', 'aim-m-1')]['state'] = how
    entries, _orphans = report(dom, volumes)
    assert entries[0]['host_pinned'] == how
    assert entries[0]['status'] == 'degraded' and entries[0]['reasons'] == [reason]


def test_report_a_dead_host_volume(pinned, host):
    dom, volumes = pinned
    host.state[POINT] = 'dead'
    entries, _orphans = report(dom, volumes)
    assert entries[0]['reasons'] == ['host_volume_dead'] and entries[0]['host_pinned'] is None


def test_report_a_bind_without_a_record(pinned, host):
    dom, volumes = pinned
    host.dirs.add(POINT + '/models/gone')
    host.pin(dom.uuid, 'ro', 'aim-gone-3', POINT, 'models/gone', True)
    _entries, orphans = report(dom, volumes)
    assert orphans == [{'vm': 'vm1', 'kind': 'bind_without_record', 'where': 'host', 'tag': 'aim-gone-3',
                        'model': None, 'source': _export.entry_path(dom.uuid, 'ro', 'aim-gone-3')}]
