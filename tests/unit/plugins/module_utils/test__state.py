# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The read model of a VM and of the host volumes."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _state
from ansible_collections.aimodel.kvm.tests.unit.plugins.fakes import FakeDomain, mounted_domain


def test_unreachable_agent_still_unreachable():
    dom = FakeDomain()
    dom.guest.reachable = False
    state = _state.VmState(dom, _guest.Agent(dom))
    assert state.guest_mounts is None and state.fstab is None and state.guest_error.unreachable


def test_guest_mount_queries_of_the_read_model():
    dom = mounted_domain()
    dom.guest.mounts.append(('aim-m-1', '/mnt/m', 'virtiofs', 'ro'))     # mounted twice: the last one is visible
    dom.guest.mounts.append(('tmpfs', '/mnt/t', 'tmpfs', 'rw'))
    state = _state.VmState(dom, _guest.Agent(dom))
    assert [m['target'] for m in state.guest_mounts_of('aim-m-1')] == ['/mnt/m', '/mnt/m']
    assert state.guest_mount('aim-m-1', '/mnt/m') is state.guest_mounts_of('aim-m-1')[-1]
    assert state.guest_mount('aim-m-1', '/mnt/t') is None
    assert state.guest_mount('aim-other', '/mnt/m') is None
    assert state.guest_mount_at('/mnt/t')['fstype'] == 'tmpfs'
    assert state.device('aim-m-1')['source'] == '/src' and state.device('aim-x') is None
    assert state.records['m']['mount_path'] == '/mnt/m'


def test_stopped_vm_reads_no_guest_and_persistent_records():
    dom = mounted_domain()
    dom.active = False
    state = _state.VmState(dom, _guest.Agent(dom))
    assert state.guest_mounts is None and state.guest_mount('aim-m-1', '/mnt/m') is None
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
        @staticmethod
        def backend_identity(alias):
            return {'fs0': '123.456'}.get(alias)

    class Host:
        mount_id = staticmethod({'/p': '77'}.get)
    devices = [{'tag': 'aim-m-1', 'alias': 'fs0'}]
    assert _state.data_path(Dom(), devices, 'aim-m-1', Host(), '/p', '31') == '123.456@77#31'
    assert _state.data_path(Dom(), devices, 'aim-m-1', Host(), '/p', None) is None
    assert _state.data_path(Dom(), devices, 'aim-m-1', Host(), '/other', '31') is None
    assert _state.data_path(Dom(), devices + devices, 'aim-m-1', Host(), '/p', '31') is None
    assert _state.data_path(Dom(), [{'tag': 'aim-m-1', 'alias': 'fs9'}], 'aim-m-1', Host(), '/p', '31') is None
