# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The libvirt boundary: device XML and the virtiofsd of a device, read from libvirt's pid file."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import subprocess
import time

import pytest

from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt


class _Dom:
    def name(self):
        return 'vm1'

    def UUIDString(self):  # pylint: disable=invalid-name
        return '11111111-2222-3333-4444-555555555555'

    def ID(self):  # pylint: disable=invalid-name
        return 7


@pytest.fixture
def fake_virtiofsd():
    # A process whose command line names virtiofsd, as libvirt's does.
    proc = subprocess.Popen(['virtiofsd-for-test', '30'], executable='sleep')
    # Until the child has exec'd, /proc/PID/cmdline is still the parent's (a python process).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open('/proc/%d/cmdline' % proc.pid, 'rb') as handle:
            if handle.read().startswith(b'virtiofsd-for-test'):
                break
        time.sleep(0.005)
    yield proc
    proc.kill()
    proc.wait()


def test_backend_alive_and_identity(tmp_path, fake_virtiofsd):
    domain = _libvirt.Domain(_Dom())
    run_dir = str(tmp_path)
    assert domain.backend_alive('fs0', run_dir) is None, 'no pid file: cannot be told'
    assert domain.backend_identity('fs0', run_dir) is None
    (tmp_path / '7-vm1-fs0-fs.pid').write_text('%d\n' % fake_virtiofsd.pid)
    assert domain.backend_alive('fs0', run_dir) is True
    identity = domain.backend_identity('fs0', run_dir)
    assert identity.startswith('%d.' % fake_virtiofsd.pid) and identity.split('.')[1].isdigit()
    assert domain.backend_identity('fs0', run_dir) == identity, 'stable while the process runs'
    assert domain.backend_alive('fs1', run_dir) is None, 'another device'
    fake_virtiofsd.kill()
    fake_virtiofsd.wait()
    assert domain.backend_alive('fs0', run_dir) is False
    assert domain.backend_identity('fs0', run_dir) is None


def test_backend_that_is_not_virtiofsd(tmp_path):
    domain = _libvirt.Domain(_Dom())
    (tmp_path / '7-vm1-fs0-fs.pid').write_text('1\n')   # init, not a virtiofsd (a reused PID)
    assert domain.backend_alive('fs0', str(tmp_path)) is False
    assert domain.backend_identity('fs0', str(tmp_path)) is None


def test_filesystem_xml_has_no_readonly():
    xml = _libvirt.filesystem_xml('/var/lib/aimodel/volumes/v/ro/models/m', 'aim-m-1', 'always')
    devs = _libvirt.filesystems('<domain><devices>%s</devices></domain>' % xml)
    assert devs == [{'tag': 'aim-m-1', 'source': '/var/lib/aimodel/volumes/v/ro/models/m', 'alias': None, 'cache': 'always'}]
    assert 'readonly' not in xml
