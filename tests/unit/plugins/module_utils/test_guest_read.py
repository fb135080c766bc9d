# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Guest files and the mount table are read by the agent itself (no guest process), with cat as the fallback."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _state
from ansible_collections.aimodel.kvm.tests.unit.plugins.fakes import FakeDomain


def test_read_without_a_guest_process():
    dom = FakeDomain()
    agent = _guest.Agent(dom)
    assert agent.read_file('/etc/fstab') == dom.guest.files['/etc/fstab']
    assert agent.mounts()[1]['target'] == '/persist'
    assert dom.guest.argvs == []
    assert agent.round_trips == 6          # open, read, close per file
    assert dom._files == {}                # every handle closed  # pylint: disable=protected-access
    assert dom.guest.files['/etc/fstab'].startswith('# static')   # a read never writes back


def test_read_missing_file_is_none():
    dom = FakeDomain()
    assert _guest.Agent(dom).read_file('/etc/nope') is None


def test_read_in_chunks(monkeypatch):
    dom = FakeDomain()
    dom.guest.files['/etc/fstab'] = ''.join('tag%d /mnt/m%d virtiofs ro,nofail 0 0\n' % (i, i) for i in range(50))
    monkeypatch.setattr(_guest, 'READ_CHUNK', 100)
    assert _guest.Agent(dom).read_file('/etc/fstab') == dom.guest.files['/etc/fstab']


def test_agent_without_file_commands_falls_back_to_cat():
    dom = FakeDomain()
    dom.guest.no_file_ops = True
    agent = _guest.Agent(dom)
    assert agent.read_file('/etc/fstab') == dom.guest.files['/etc/fstab']
    assert agent.read_file('/etc/nope') is None
    assert agent.mounts()[1]['target'] == '/persist'
    assert ['cat', '/proc/self/mountinfo'] in dom.guest.argvs


def test_unreachable_agent_still_unreachable():
    dom = FakeDomain()
    dom.guest.reachable = False
    state = _state.VmState(dom, _guest.Agent(dom))
    assert state.guest_mounts is None and state.fstab is None and state.guest_error.unreachable
