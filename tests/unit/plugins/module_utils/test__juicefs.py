# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The host volume: the metadata engine checked before the client starts, the host mount table."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import ast
import errno
import json
import os
import socket
import time
import sys
import threading

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.aimodel.kvm.plugins.module_utils import _juicefs


@pytest.fixture
def run_command(monkeypatch):
    """The run_command of a real AnsibleModule (the one the modules pass to _juicefs.Host); the environment changes
    AnsibleModule makes (its locale) are undone after the test."""
    for name, value in list(os.environ.items()):
        monkeypatch.setenv(name, value)
    with patch_module_args({}):
        module = AnsibleModule(argument_spec={})
    for name in ('LANG', 'LC_ALL', 'LC_MESSAGES'):
        if name not in os.environ:
            monkeypatch.delenv(name, raising=False)
    return module.run_command


@pytest.mark.parametrize('url, endpoint', [
    ('redis://127.0.0.1:16379/1', ('127.0.0.1', 16379)),
    ('redis://user@db.example:6380/2', ('db.example', 6380)),
    ('rediss://cache/1', ('cache', 6379)),
    ('postgres://u@pg:5433/jfs', ('pg', 5433)),
    ('mysql://u@(my:3307)/jfs', ('my', 3307)),
    ('mysql://u@(my)/jfs', ('my', 3306)),
    ('sqlite3:///var/lib/meta.db', None),
    ('tikv://h1:2379,h2:2379/jfs', None),
    ('redis://h1,h2:26379/1', None),
])
def test_meta_endpoint(url, endpoint):
    assert _juicefs.meta_endpoint(url) == endpoint


def test_unreachable_metadata_fails_fast():
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    port = listener.getsockname()[1]
    listener.close()   # nothing listens there now
    with pytest.raises(_juicefs.VolumeError) as err:
        _juicefs.check_reachable('redis://127.0.0.1:%d/1' % port, timeout=2)
    assert str(err.value).startswith('volume.meta_url:') and str(port) in str(err.value)


def test_reachable_metadata_passes():
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(1)
    try:
        _juicefs.check_reachable('redis://127.0.0.1:%d/1' % listener.getsockname()[1], timeout=2)
    finally:
        listener.close()


def test_mount_id_of_the_visible_mount(tmp_path):
    info = tmp_path / 'mountinfo'
    info.write_text('21 1 0:20 / /var/lib/aimodel/volumes/v\\040x/ro rw - fuse.juicefs JuiceFS:v rw\n'
                    '30 21 0:40 / /var/lib/aimodel/volumes/v\\040x/ro rw - fuse.juicefs JuiceFS:v rw\n'
                    '31 1 0:41 / /other rw - tmpfs tmpfs rw\n')
    assert _juicefs.Host().mount_id('/var/lib/aimodel/volumes/v x/ro', str(info)) == '30'
    assert _juicefs.Host().mount_id('/nowhere', str(info)) is None


def test_check_source_walks_the_volume(tmp_path):
    (tmp_path / 'models' / 'm1').mkdir(parents=True)
    (tmp_path / 'models' / 'link').symlink_to('m1')
    host = _juicefs.Host()
    assert host.check_source(str(tmp_path), 'models/m1') is True
    assert host.check_source(str(tmp_path), 'models/nope') is None
    with pytest.raises(_juicefs.VolumeError) as err:
        host.check_source(str(tmp_path), 'models/link')
    assert 'models/link is a symbolic link' in str(err.value)


def test_the_export_tree_as_the_host_mount_table_shows_it(monkeypatch):
    from ansible_collections.aimodel.kvm.plugins.module_utils import _export
    from ansible_collections.aimodel.kvm.plugins.module_utils._mountinfo import parse_mountinfo
    uuid = '11111111-2222-3333-4444-555555555555'
    view = _export.view_dir(uuid, 'ro')
    table = parse_mountinfo('30 1 252:1 /stage %s ro shared:1 - ext4 /dev/vda1 rw\n'
                            '31 30 0:40 /models/a %s/aim-a-1 ro shared:1 - fuse.juicefs JuiceFS:v rw\n'
                            '32 30 0:40 /models/b %s/aim-b-2 ro shared:1 - fuse.juicefs JuiceFS:v rw\n'
                            '33 30 0:41 /models/b %s/aim-b-2 ro shared:1 - fuse.juicefs JuiceFS:v rw\n'
                            % (view, view, view, view))
    monkeypatch.setattr(_export, 'host_mounts', lambda path=None: table)
    host = _juicefs.Host()
    assert host.entry_id(uuid, 'ro', 'aim-a-1') == '31:0:40'
    assert host.entry_id(uuid, 'ro', 'aim-b-2') == '33:0:41', 'the visible bind'
    assert host.entry_id(uuid, 'ro', 'aim-c-3') is None and host.entry_id(uuid, 'rw', 'aim-a-1') is None
    assert host.bound_entries(uuid) == [('ro', 'aim-a-1'), ('ro', 'aim-b-2')]


# --- which volume is mounted, and which one the engine holds ------------------------------------------------

VOL_UUID = 'b28a9107-10c1-4904-931f-f4f367595740'
CONFIG = {'Meta': {'MountPoint': '/x'}, 'Format': {'Name': 'labvol', 'UUID': VOL_UUID.upper(), 'SecretKey': 'k'}}


def test_the_identity_of_a_mount_is_read_from_its_config_file(tmp_path):
    (tmp_path / '.config').write_text(json.dumps(CONFIG))
    assert _juicefs.mounted_identity(str(tmp_path)) == ('labvol', VOL_UUID)


@pytest.mark.parametrize('content', [
    None, b'', b'not json', b'[]', json.dumps({'Format': []}).encode(),
    json.dumps({'Format': {'Name': 'labvol', 'UUID': '../../etc'}}).encode(),
    json.dumps({'Format': {'Name': 7, 'UUID': VOL_UUID}}).encode(),
    b'{"Format": {"Name": "labvol", "UUID": "%s"}, "pad": "%s"}' % (VOL_UUID.encode(), b'x' * (_juicefs.CONFIG_MAX_BYTES)),
])
def test_a_config_file_without_an_identity_gives_none(tmp_path, content):
    if content is not None:
        (tmp_path / '.config').write_bytes(content)
    assert _juicefs.mounted_identity(str(tmp_path)) is None


def test_a_config_file_that_does_not_answer_gives_none(monkeypatch, tmp_path):
    monkeypatch.setattr(_juicefs, '_in_thread', lambda call, timeout: (errno.ETIMEDOUT, None))
    (tmp_path / '.config').write_text(json.dumps(CONFIG))
    assert _juicefs.mounted_identity(str(tmp_path)) is None


def _sh_client(tmp_path, script):
    client = tmp_path / 'juicefs'
    client.write_text('#!/bin/sh\n' + script)
    client.chmod(0o755)
    return str(client)


def test_the_engine_is_asked_for_its_volume_with_the_password_in_the_environment_only(tmp_path, run_command):
    client = _sh_client(tmp_path, 'echo "$@" > %s/argv; echo "$META_PASSWORD" > %s/pw\n'
                                  'echo "<INFO>: Meta address: $2" >&2\n'
                                  'echo \'{"Name": "labvol", "UUID": "%s"}\'\n' % (tmp_path, tmp_path, VOL_UUID))
    found = _juicefs.Host(run_command).engine_identity(client, 'sqlite3:///x.db', 'p:w/@d')
    assert found == ('labvol', VOL_UUID)
    assert (tmp_path / 'argv').read_text() == 'config sqlite3:///x.db\n'
    assert (tmp_path / 'pw').read_text() == 'p:w/@d\n'


@pytest.mark.parametrize('script', ['echo "bad p:w/@d" >&2; exit 1', 'echo "{}"', 'echo "[1]"'])
def test_an_engine_without_an_answer_fails_without_the_password(tmp_path, script, run_command):
    client = _sh_client(tmp_path, script)
    with pytest.raises(_juicefs.VolumeError) as err:
        _juicefs.Host(run_command).engine_identity(client, 'sqlite3:///x.db', 'p:w/@d')
    assert str(err.value).startswith('volume.meta_url: cannot read the volume') and 'p:w/@d' not in str(err.value)


@pytest.mark.parametrize('errno_value, state', [(0, 'mounted'), (errno.ENOTCONN, 'dead'), (errno.EIO, 'dead'),
                                                (errno.ETIMEDOUT, 'slow')])
def test_a_volume_that_does_not_answer_in_time_is_slow_not_dead(monkeypatch, errno_value, state):
    monkeypatch.setattr(_juicefs, 'mount_table', lambda path=None: {'/p': (_juicefs.FSTYPE, 'JuiceFS:labvol')})
    monkeypatch.setattr(_juicefs, '_statfs_with_timeout', lambda path, timeout: errno_value)
    assert _juicefs.Host().status('/p', 'labvol') == state


def test_statfs_that_hangs_times_out():
    gate = threading.Event()
    err, result = _juicefs._in_thread(gate.wait, 0.05)
    gate.set()
    assert (err, result) == (errno.ETIMEDOUT, None)


# --- what a child process gets --------------------------------------------------------------------------

HARD = 'Xqv7:Zrw9/Wmk4@Kpz2%Jtn5'
ENCODED = 'Xqv7%3AZrw9%2FWmk4%40Kpz2%25Jtn5'
MODULE_ENV = {
    'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'HOME': '/root', 'TZ': 'UTC', 'LANG': 'de_DE.UTF-8',
    'https_proxy': 'http://proxy:3128', 'AIMODEL_META_URL': 'redis://:%s@h:6379/1' % ENCODED,
    'AIMODEL_META_PASSWORD': HARD, 'META_PASSWORD': 'stale', 'REDIS_PASSWORD': 'other', 'LD_PRELOAD': '/tmp/x.so',
    'ANSIBLE_VAULT_PASSWORD_FILE': '/tmp/v', 'LIBVIRT_DEFAULT_URI': 'qemu:///system',
}


def test_a_child_gets_only_the_allowed_variables():
    assert _juicefs.child_env({'META_PASSWORD': HARD}, MODULE_ENV) == {
        'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'LANG': 'C', 'LC_ALL': 'C', 'HOME': '/root', 'TZ': 'UTC',
        'https_proxy': 'http://proxy:3128', 'META_PASSWORD': HARD}
    assert _juicefs.child_env(None, MODULE_ENV) == {
        'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'LANG': 'C', 'LC_ALL': 'C', 'HOME': '/root', 'TZ': 'UTC',
        'https_proxy': 'http://proxy:3128'}


@pytest.mark.parametrize('path', [None, '', 'bin:/usr/bin', '/usr/bin::/bin', '.:/usr/bin'])
def test_a_child_gets_the_safe_path_unless_every_directory_is_absolute(path):
    environ = {} if path is None else {'PATH': path}
    assert _juicefs.child_env(None, environ) == {'PATH': _juicefs.SAFE_PATH, 'LANG': 'C', 'LC_ALL': 'C'}


def _client(tmp_path, status=3):
    """A stand-in for the client: prints its arguments, its environment and the password, as it is and %-encoded."""
    script = tmp_path / 'juicefs'
    script.write_text('#!%s\nimport os, sys, urllib.parse\nprint(sys.argv[1:])\nprint(sorted(os.environ.items()))\n'
                      'pw = os.environ.get("META_PASSWORD", "")\nprint(pw, urllib.parse.quote(pw, safe=""))\n'
                      'sys.exit(%d)\n' % (sys.executable, status))
    script.chmod(0o755)
    return str(script)


def test_the_client_gets_the_password_only_in_its_environment_and_its_output_is_scrubbed(
        tmp_path, monkeypatch, run_command):
    for name, value in MODULE_ENV.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(_juicefs.VolumeError) as err:
        _juicefs.Host(run_command).mount(_client(tmp_path), 'v1', 'sqlite3://%s/meta.db' % tmp_path, HARD, True,
                                         root=str(tmp_path / 'volumes'), log_dir=str(tmp_path / 'log'))
    msg = str(err.value)
    assert msg.startswith('mounting volume v1 at %s/volumes/v1/ro failed (exit 3): ' % tmp_path)
    assert "('META_PASSWORD', '****')" in msg and '**** ****' in msg
    for piece in ['Xqv7', 'Zrw9', 'Wmk4', 'Kpz2', 'Jtn5', 'AIMODEL_META', 'REDIS_PASSWORD', 'stale', 'de_DE', 'LIBVIRT']:
        assert piece not in msg
    assert "('LC_ALL', 'C')" in msg and "'--read-only', 'sqlite3://%s/meta.db'" % tmp_path in msg
    # The client's environment (the line it prints) holds the allowed variables and the password, nothing else;
    # env(1), which starts it, still has LD_PRELOAD and the dynamic loader may say so on stderr.
    client_env = [line for line in msg.splitlines() if line.startswith("[('")][0]
    assert sorted(name for name, _value in ast.literal_eval(client_env)) == [
        'HOME', 'LANG', 'LC_ALL', 'META_PASSWORD', 'PATH', 'TZ', 'https_proxy']


def test_warmup_and_umount_get_no_password(tmp_path, monkeypatch, run_command):
    for name, value in MODULE_ENV.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(_juicefs.VolumeError) as err:
        _juicefs.Host(run_command).warmup(_client(tmp_path), str(tmp_path))
    assert "('META_PASSWORD'" not in str(err.value) and 'AIMODEL_META' not in str(err.value)
    rc, output = _juicefs._run(run_command, ['env'], stderr=False)   # pylint: disable=protected-access
    assert rc == 0 and sorted(line.split('=', 1)[0] for line in output.splitlines()) == [
        'HOME', 'LANG', 'LC_ALL', 'PATH', 'TZ', 'https_proxy']


def test_a_program_past_its_timeout_is_killed(tmp_path, run_command):
    client = _sh_client(tmp_path, 'echo started; exec sleep 60\n')
    start = time.monotonic()
    rc, output = _juicefs._run(run_command, [client], timeout=1)   # pylint: disable=protected-access
    assert (rc, output) == (124, 'timed out after 1s')
    assert time.monotonic() - start < 30


def test_the_arguments_reach_the_program_as_they_are(tmp_path, run_command, monkeypatch):
    monkeypatch.setenv('AIMODEL_X', 'expanded')
    client = _sh_client(tmp_path, 'for a in "$@"; do echo "[$a]"; done; echo out; echo err >&2; exit 2\n')
    rc, output = _juicefs._run(run_command, [client, '$AIMODEL_X', '~', 'a b'],   # pylint: disable=protected-access
                               stderr=False)
    assert (rc, output) == (2, '[$AIMODEL_X]\n[~]\n[a b]\nout\nerr\n')


def test_a_host_made_without_run_command_runs_nothing(tmp_path):
    with pytest.raises(_juicefs.VolumeError) as err:
        _juicefs.Host().warmup(_sh_client(tmp_path, 'exit 0\n'), str(tmp_path))
    assert "needs the module's run_command" in str(err.value)
