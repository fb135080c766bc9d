# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import pytest

from ansible_collections.aimodel.kvm.plugins.module_utils import _migrate
from ansible_collections.aimodel.kvm.plugins.module_utils._spec import SpecError

HELP = 'Usage: virtiofsd [OPTIONS]\n      --migration-mode <MIGRATION_MODE>\n'


@pytest.mark.parametrize('uri', [
    'qemu+ssh://hv2/system', 'qemu+ssh://root@hv2/system', 'qemu+ssh://root@hv2.example.org:2222/system',
    'qemu+ssh://198.18.0.12/system', 'qemu+ssh://[fd00::12]:22/system',
])
def test_destination_uri_accepted(uri):
    assert _migrate.validate_destination_uri(uri) == uri


@pytest.mark.parametrize('uri', [
    'qemu:///system', 'qemu+unix:///system', 'qemu+tcp://hv2/system', 'qemu+tls://hv2/system',
    'qemu+ssh://hv2/session', 'qemu+ssh://hv2/system?socket=/tmp/s', 'qemu+ssh://hv2/system?command=/bin/sh',
    'qemu+ssh://hv2/system#x', 'qemu+ssh:///system', 'qemu+ssh://hv2:99999/system', 'qemu+ssh://-x/system',
    'qemu+ssh://a b/system', 'qemu+ssh://u;x@hv2/system', 'qemu+ext://hv2/system', 'xen+ssh://hv2/system',
    'qemu+ssh://hv2/system\n', '',
])
def test_destination_uri_refused(uri):
    with pytest.raises(SpecError) as err:
        _migrate.validate_destination_uri(uri)
    assert err.value.args[0].startswith('destination_uri: ')


def test_destination_uri_built():
    assert _migrate.destination_uri('hv2') == 'qemu+ssh://hv2/system'
    assert _migrate.destination_uri('hv2', user='root', port=2222) == 'qemu+ssh://root@hv2:2222/system'
    with pytest.raises(SpecError):
        _migrate.destination_uri('hv2/system?socket=x')


@pytest.mark.parametrize('uri', ['tcp://198.18.0.12', 'tcp://198.18.0.12:49152', 'tcp://hv2', 'tcp://[fd00::1]:49152'])
def test_data_uri_accepted(uri):
    assert _migrate.validate_data_uri(uri) == uri


@pytest.mark.parametrize('uri', ['tcp://', 'tcp://hv2:0', 'unix:///tmp/s', 'tcp://hv2/x', 'tcp://hv2?x=1', 'rdma://hv2'])
def test_data_uri_refused(uri):
    with pytest.raises(SpecError):
        _migrate.validate_data_uri(uri)


def test_data_uri_built():
    assert _migrate.data_uri('198.18.0.12') == 'tcp://198.18.0.12'
    assert _migrate.data_uri('fd00::1', 49152) == 'tcp://[fd00::1]:49152'


@pytest.mark.parametrize('raw, version', [
    (9000000, (9, 0, 0)), (10006000, (10, 6, 0)), ('8.2.1', (8, 2, 1)), ('virtiofsd 1.11.1', (1, 11, 1)),
    ('QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u12)', (7, 2, 15)), ('1.13', (1, 13, 0)),
    ('none', None), (None, None), ('', None),
])
def test_parse_version(raw, version):
    assert _migrate.parse_version(raw) == version


def test_native_support_new_stack():
    assert _migrate.native_support(10006000, '8.2.0', 'virtiofsd 1.11.0', HELP, True) == (True, [])
    assert _migrate.native_support('11.0.0', '9.1.0', '1.13.3', HELP) == (True, [])


def test_native_support_this_lab():
    ok, reasons = _migrate.native_support(9000000, '7.2.15', '', '', None)
    assert not ok
    assert reasons == ['libvirt 9.0.0 is older than 10.6.0', 'QEMU 7.2.15 is older than 8.2.0',
                       'virtiofsd version unknown', 'virtiofsd has no --migration-mode']


def test_native_support_each_part():
    assert _migrate.native_support('10.5.0', '8.2.0', '1.11.0', HELP)[1] == ['libvirt 10.5.0 is older than 10.6.0']
    assert _migrate.native_support('10.6.0', '8.1.9', '1.11.0', HELP)[1] == ['QEMU 8.1.9 is older than 8.2.0']
    assert _migrate.native_support('10.6.0', '8.2.0', '1.10.1', HELP)[1] == ['virtiofsd 1.10.1 is older than 1.11.0']
    assert _migrate.native_support('10.6.0', '8.2.0', '1.11.0', 'Usage')[1] == ['virtiofsd has no --migration-mode']
    assert _migrate.native_support('10.6.0', '8.2.0', '1.11.0', HELP, False)[1] == [
        "virtiofsd's vhost-user descriptor does not list migrate-precopy"]


def test_descriptor_has_precopy():
    assert _migrate.descriptor_has_precopy({'type': 'fs', 'binary': '/usr/libexec/virtiofsd',
                                            'features': ['migrate-precopy', 'separate-options']})
    assert not _migrate.descriptor_has_precopy({'type': 'fs', 'features': ['separate-options']})
    assert not _migrate.descriptor_has_precopy({'type': 'gpu', 'features': ['migrate-precopy']})
    assert not _migrate.descriptor_has_precopy(['migrate-precopy'])


def test_migration_mode():
    assert _migrate.migration_mode((True, []), (True, [])) == ('native', [])
    assert _migrate.migration_mode((True, []), (False, ['QEMU 7.2.0 is older than 8.2.0'])) == (
        'detach', ['destination: QEMU 7.2.0 is older than 8.2.0'])
    assert _migrate.migration_mode((False, ['a']), (False, ['b'])) == ('detach', ['source: a', 'destination: b'])
