# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The truth per mount that vm_model_mount_info reports, from the read model."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _info
from ansible_collections.aimodel.kvm.plugins.module_utils import _state
from ansible_collections.aimodel.kvm.tests.unit.plugins.fakes import mounted_domain


def test_report_statuses():
    dom = mounted_domain()
    dom.config = dom.config + [('aim-stray-2', '/other')]
    entries, orphans = _info.report(_state.VmState(dom, _guest.Agent(dom)), 'vm1')
    assert entries[0]['status'] == 'mounted' and entries[0]['reasons'] == []
    assert orphans == [{'vm': 'vm1', 'kind': 'device_without_record', 'where': 'config', 'tag': 'aim-stray-2',
                        'source': '/other'}]
    # After a reboot without the fstab line: the device is there, the guest mount is not.
    dom.guest.mounts = [m for m in dom.guest.mounts if m[2] != 'virtiofs']
    entries, _orphans = _info.report(_state.VmState(dom, _guest.Agent(dom)), 'vm1')
    assert entries[0]['status'] == 'degraded' and entries[0]['reasons'] == ['not_mounted_in_guest']
    dom.guest.reachable = False
    entries, _orphans = _info.report(_state.VmState(dom, _guest.Agent(dom)), 'vm1')
    assert 'guest_unreachable' in entries[0]['reasons'] and entries[0]['guest_mounted'] is None
    dom.active = False
    entries, _orphans = _info.report(_state.VmState(dom, _guest.Agent(dom)), 'vm1')
    assert entries[0]['status'] == 'pending'


def test_report_stale_mount_and_record_without_device():
    dom = mounted_domain()
    dom.guest.stale.add('/mnt/m')
    agent = _guest.Agent(dom)
    entries, orphans = _info.report(_state.VmState(dom, agent), 'vm1')
    assert entries[0]['status'] == 'degraded' and entries[0]['reasons'] == ['stale_guest_mount']
    assert entries[0]['guest_mounted'] is True and entries[0]['guest_accessible'] is False
    assert orphans == []
    dom.live, dom.config = [], []
    entries, orphans = _info.report(_state.VmState(dom, _guest.Agent(dom)), 'vm1')
    assert set(entries[0]['reasons']) >= set(['device_missing_live', 'device_missing_config'])
    assert orphans[0]['kind'] == 'record_without_device' and orphans[0]['model'] == 'm'


def test_report_dead_backend_is_not_probed():
    dom = mounted_domain()
    dom.dead_backends.add('aim-m-1')
    entries, _orphans = _info.report(_state.VmState(dom, _guest.Agent(dom)), 'vm1')
    assert entries[0]['reasons'] == ['device_backend_dead'] and entries[0]['guest_accessible'] is None
    assert not [a for a in dom.guest.argvs if a[0] == 'stat']
