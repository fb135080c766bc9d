# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import json

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


C_VERSION = ('virtiofsd version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n'
             'Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n')


def test_qemus_c_virtiofsd_never_passes_for_a_new_one():
    # Its version number (QEMU's, 7.2) is above the Rust virtiofsd's 1.11: the version alone would pass it.
    assert _migrate.c_virtiofsd(C_VERSION) and not _migrate.c_virtiofsd('virtiofsd 1.11.1')
    ok, reasons = _migrate.native_support('10.6.0', '8.2.0', C_VERSION, HELP, True)
    assert not ok and reasons == ["virtiofsd is QEMU's C virtiofsd (virtiofsd version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)), "
                                  "which cannot migrate"]


class Files:
    """A fake file tree for fs_descriptor / host_support: dir -> {name: bytes}."""

    def __init__(self, tree):
        self.tree, self.reads = tree, []

    def listdir(self, directory):
        if directory not in self.tree:
            raise OSError(2, 'No such file or directory')
        return list(self.tree[directory])

    def read_file(self, path, limit):
        self.reads.append((path, limit))
        directory, name = path.rsplit('/', 1)
        return self.tree[directory][name][:limit]


RUST = json.dumps({'description': 'virtiofsd vhost-user-fs', 'type': 'fs', 'binary': '/usr/libexec/virtiofsd',
                   'features': ['migrate-precopy', 'separate-options']}).encode()
C_DESC = json.dumps({'description': 'QEMU virtiofsd vhost-user-fs', 'type': 'fs', 'binary': '/usr/lib/qemu/virtiofsd'}).encode()
GPU = json.dumps({'type': 'gpu', 'binary': '/usr/libexec/vhost-user-gpu'}).encode()


def test_the_descriptor_libvirt_uses():
    files = Files({'/usr/share/qemu/vhost-user': {'50-qemu-virtiofsd.json': C_DESC, '10-gpu.json': GPU,
                                                  '60-virtiofsd.json': RUST}})
    path, desc = _migrate.fs_descriptor(files.listdir, files.read_file)
    assert path == '/usr/share/qemu/vhost-user/50-qemu-virtiofsd.json' and desc['binary'] == '/usr/lib/qemu/virtiofsd'
    # A file in /etc of the same name hides the one in /usr/share.
    files.tree['/etc/qemu/vhost-user'] = {'50-qemu-virtiofsd.json': RUST}
    path, desc = _migrate.fs_descriptor(files.listdir, files.read_file)
    assert path == '/etc/qemu/vhost-user/50-qemu-virtiofsd.json' and _migrate.descriptor_has_precopy(desc)


@pytest.mark.parametrize('data', [b'{not json', b'[]', json.dumps({'type': 'fs'}).encode(), b' ' * 70000 + b'{}'])
def test_a_bad_descriptor_is_skipped(data):
    files = Files({'/usr/share/qemu/vhost-user': {'10-bad.json': data, '50-c.json': C_DESC}})
    path, _desc = _migrate.fs_descriptor(files.listdir, files.read_file)
    assert path == '/usr/share/qemu/vhost-user/50-c.json'
    assert all(limit == _migrate.DESCRIPTOR_MAX + 1 for _p, limit in files.reads)


def runner(outputs):
    calls = []

    def run(argv):
        calls.append(argv)
        return outputs[argv[-1]]
    return run, calls


def test_host_support_of_this_lab():
    files = Files({'/usr/share/qemu/vhost-user': {'50-qemu-virtiofsd.json': C_DESC}})
    run, calls = runner({'--version': (0, C_VERSION, ''), '--help': (0, 'Usage: virtiofsd [options]', '')})
    out = _migrate.host_support(lambda: (9000000, 7002015), files.listdir, files.read_file, run)
    assert out['native'] is False and out['libvirt'] == '9.0.0' and out['qemu'] == '7.2.15'
    assert out['virtiofsd_binary'] == '/usr/lib/qemu/virtiofsd' and out['precopy'] is False
    assert out['virtiofsd'] == 'virtiofsd version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)'
    assert 'libvirt 9.0.0 is older than 10.6.0' in out['reasons'] and 'QEMU 7.2.15 is older than 8.2.0' in out['reasons']
    assert any("C virtiofsd" in r for r in out['reasons']) and "virtiofsd's vhost-user descriptor does not list migrate-precopy" in out['reasons']
    assert calls == [['/usr/lib/qemu/virtiofsd', '--version'], ['/usr/lib/qemu/virtiofsd', '--help']]


def test_host_support_of_a_new_stack():
    files = Files({'/usr/share/qemu/vhost-user': {'50-virtiofsd.json': RUST}})
    run, _calls = runner({'--version': (0, 'virtiofsd 1.13.3\n', ''), '--help': (0, HELP, '')})
    out = _migrate.host_support(lambda: (10010000, 9002000), files.listdir, files.read_file, run)
    assert out == dict(native=True, reasons=[], libvirt='10.10.0', qemu='9.2.0', virtiofsd='virtiofsd 1.13.3',
                       descriptor='/usr/share/qemu/vhost-user/50-virtiofsd.json', virtiofsd_binary='/usr/libexec/virtiofsd',
                       precopy=True)


def test_host_support_without_a_descriptor_or_a_working_binary():
    out = _migrate.host_support(lambda: (10010000, 9002000), Files({}).listdir, Files({}).read_file, runner({})[0])
    assert out['native'] is False and out['reasons'][0].startswith('no vhost-user-fs descriptor in /etc/qemu/vhost-user')
    files = Files({'/usr/share/qemu/vhost-user': {'50-virtiofsd.json': RUST}})
    run, _calls = runner({'--version': (127, '', 'not found'), '--help': (127, '', 'not found')})
    out = _migrate.host_support(lambda: (10010000, 9002000), files.listdir, files.read_file, run)
    assert out['native'] is False and 'virtiofsd version unknown' in out['reasons']
    assert 'virtiofsd has no --migration-mode' in out['reasons']
