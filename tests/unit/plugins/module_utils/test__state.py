# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The read model of a VM and of the host volumes."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.aimodel.kvm.plugins.module_utils import _export
from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _record
from ansible_collections.aimodel.kvm.plugins.module_utils import _state
from ansible_collections.aimodel.kvm.tests.unit.plugins.fakes import RECORD, FakeDomain, guest_run, legacy_domain, \
    mounted_domain


def test_unreachable_agent_still_unreachable():
    dom = FakeDomain()
    dom.guest.reachable = False
    state = _state.VmState(dom, _guest.Agent(dom))
    assert state.guest_mounts is None and state.fstab is None and state.guest_error.unreachable


def test_guest_mount_queries_of_the_shared_layout():
    dom = mounted_domain()
    guest_run(dom, ['mkdir', '-p', '/mnt/m2'])
    guest_run(dom, ['mount', '-o', 'bind,ro,nosuid,nodev', '/run/aimodel/ro/aim-m-1', '/mnt/m2'])   # a second bind
    dom.guest.add_mount('tmpfs', '/mnt/t', 'tmpfs', 'rw')
    state = _state.VmState(dom, _guest.Agent(dom))
    rec = state.records['m']
    assert [(m['target'], m['root']) for m in state.guest_mounts_of('aimodel-ro')] == \
        [('/run/aimodel/ro', '/'), ('/mnt/m', '/aim-m-1'), ('/mnt/m2', '/aim-m-1')]
    assert [m['target'] for m in state.guest_mounts_of('aimodel-ro', '/')] == ['/run/aimodel/ro']
    assert state.guest_mounts_of('tmpfs') == [], 'virtiofs mounts only'
    assert [m['target'] for m in state.model_mounts(rec)] == ['/mnt/m', '/mnt/m2'], 'the binds, not the base'
    assert state.model_mount(rec)['target'] == '/mnt/m'
    assert state.model_mount(rec, '/mnt/m2') is state.model_mounts(rec)[-1]
    assert state.model_mount(rec, '/mnt/t') is None
    assert state.model_mount(dict(rec, tag='aim-other-2')) is None
    assert state.base_mount('aimodel-ro')['target'] == '/run/aimodel/ro'
    assert state.base_mount('aimodel-rw') is None and state.base_mount('aim-m-1') is None
    assert state.guest_mount_at('/mnt/t')['fstype'] == 'tmpfs'
    assert state.device('aimodel-ro')['source'] == _export.view_dir(dom.uuid, 'ro') and state.device('aim-x') is None
    assert rec['mount_path'] == '/mnt/m' and rec['device'] == 'aimodel-ro'


def test_the_visible_mount_of_a_model_is_the_last_one_at_its_path():
    dom = mounted_domain()
    guest_run(dom, ['mount', '-o', 'bind,ro,nosuid,nodev', '/run/aimodel/ro/aim-m-1', '/mnt/m'])   # bound twice
    state = _state.VmState(dom, _guest.Agent(dom))
    rec = state.records['m']
    assert len(state.model_mounts(rec)) == 2
    assert state.model_mount(rec) is state.model_mounts(rec)[-1]


def test_guest_mount_queries_of_the_earlier_layout():
    dom = legacy_domain()
    state = _state.VmState(dom, _guest.Agent(dom))
    rec = state.records['m']
    assert rec.get('device') is None
    assert [m['target'] for m in state.model_mounts(rec)] == ['/mnt/m']
    assert state.model_mount(rec)['source'] == 'aim-m-1'
    assert state.base_mount('aimodel-ro') is None


def test_records_on_a_device_live_or_persistent():
    dom = mounted_domain()
    live = {'m': dict(RECORD), 'x': dict(RECORD, model='x', tag='aim-x-1', device='aimodel-rw')}
    config = {'m': dict(RECORD), 'y': dict(RECORD, model='y', tag='aim-y-1'),
              'old': dict(RECORD, model='old', tag='aim-old-1', device=None)}
    dom.meta['live'], dom.meta['config'] = _record.render(live), _record.render(config)
    state = _state.VmState(dom, _guest.Agent(dom))
    assert state.records_on('aimodel-ro') == ['m', 'y']
    assert state.records_on('aimodel-rw') == ['x']
    assert state.records_on('aimodel-ro-always') == []


def test_stopped_vm_reads_no_guest_and_persistent_records():
    dom = mounted_domain()
    dom.active = False
    state = _state.VmState(dom, _guest.Agent(dom))
    assert state.guest_mounts is None and state.model_mount(state.records['m']) is None
    assert state.base_mount('aimodel-ro') is None
    assert state.live_devices == [] and state.records['m']['tag'] == 'aim-m-1'
    assert dom.guest.argvs == []


def test_host_volumes_look_at_each_mount_point_once():
    calls = []

    class Host:
        @staticmethod
        def status(point, volume):
            calls.append((point, volume))
            return 'mounted'
    volumes = _state.HostVolumes(Host(), '/srv/vols')
    assert volumes.status('v', True) == volumes.status('v', True) == 'mounted'
    volumes.status('v', False)
    assert calls == [('/srv/vols/v/ro', 'v'), ('/srv/vols/v/rw', 'v')]


def test_data_path_needs_every_part():
    class Dom:
        uuid = 'u-1'

        @staticmethod
        def backend_identity(alias):
            return {'fs0': '123.456'}.get(alias)

    class Host:
        @staticmethod
        def entry_id(uuid, key, entry):
            return {('u-1', 'ro', 'aim-m-1'): '77:0:42'}.get((uuid, key, entry))
    devices = [{'tag': 'aimodel-ro', 'alias': 'fs0'}]
    assert _state.data_path(Dom(), devices, 'aimodel-ro', Host(), 'ro', 'aim-m-1', '31') == '123.456@77:0:42#31'
    assert _state.data_path(Dom(), devices, 'aimodel-ro', Host(), 'ro', 'aim-m-1', None) is None
    assert _state.data_path(Dom(), devices, 'aimodel-ro', Host(), 'ro', 'aim-other-2', '31') is None
    assert _state.data_path(Dom(), devices, 'aimodel-ro', Host(), 'rw', 'aim-m-1', '31') is None
    assert _state.data_path(Dom(), devices + devices, 'aimodel-ro', Host(), 'ro', 'aim-m-1', '31') is None
    assert _state.data_path(Dom(), [{'tag': 'aimodel-ro', 'alias': 'fs9'}], 'aimodel-ro', Host(), 'ro', 'aim-m-1',
                            '31') is None
    assert _state.data_path(Dom(), devices, 'aimodel-rw', Host(), 'ro', 'aim-m-1', '31') is None
