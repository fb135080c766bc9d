# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One operation per name at a time: an flock, waited for up to the timeout, released on exit."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import os
import stat
import threading
import time

import pytest

from ansible_collections.aimodel.kvm.plugins.module_utils import _lock


def test_a_held_lock_times_out_naming_what_it_guards(tmp_path):
    with _lock.Lock('vm-1', 1, 'VM one', lock_dir=str(tmp_path)):
        with pytest.raises(_lock.LockTimeout) as info:
            with _lock.Lock('vm-1', 1, 'VM one', lock_dir=str(tmp_path)):
                pass
    assert 'VM one' in str(info.value) and 'lock_timeout' in str(info.value)
    assert 'nothing was changed' in str(info.value)


def test_released_on_exit_and_names_are_independent(tmp_path):
    with _lock.Lock('vm-1', 1, 'VM one', lock_dir=str(tmp_path)):
        with _lock.Lock('vm-2', 1, 'VM two', lock_dir=str(tmp_path)):
            pass
    with _lock.Lock('vm-1', 1, 'VM one', lock_dir=str(tmp_path)) as lock:
        assert lock.path == str(tmp_path / 'vm-1.lock')


def test_the_file_name_is_made_safe(tmp_path):
    assert _lock.Lock('volume-a/../b c', 1, 'x', lock_dir=str(tmp_path)).path == str(tmp_path / 'volume-a_.._b_c.lock')


def test_the_lock_directory_is_made_root_owned_0700(tmp_path):
    lock_dir = tmp_path / 'run' / 'aimodel' / 'locks'
    old = os.umask(0)
    try:
        with _lock.Lock('vm-1', 1, 'VM one', lock_dir=str(lock_dir)):
            pass
    finally:
        os.umask(old)
    info = os.lstat(str(lock_dir))
    assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.geteuid()
    assert stat.S_IMODE(os.lstat(str(lock_dir.parent)).st_mode) == 0o755   # not 0777 under umask 0


@pytest.mark.parametrize('mode', [0o777, 0o1777, 0o770, 0o720, 0o702])
def test_a_lock_directory_writable_by_others_is_refused(tmp_path, mode):
    lock_dir = tmp_path / 'locks'
    lock_dir.mkdir()
    lock_dir.chmod(mode)
    with pytest.raises(_lock.LockDirError) as info:
        with _lock.Lock('vm-1', 1, 'VM one', lock_dir=str(lock_dir)):
            pass
    assert 'writable by its group or others' in str(info.value) and str(lock_dir) in str(info.value)
    assert os.listdir(str(lock_dir)) == []


def test_a_readable_root_lock_directory_is_kept(tmp_path):
    lock_dir = tmp_path / 'locks'
    lock_dir.mkdir()
    lock_dir.chmod(0o755)
    with _lock.Lock('vm-1', 1, 'VM one', lock_dir=str(lock_dir)):
        pass


def test_a_lock_directory_that_is_a_symlink_is_refused(tmp_path):
    real = tmp_path / 'elsewhere'
    real.mkdir(mode=0o700)
    (tmp_path / 'locks').symlink_to(real)
    with pytest.raises(_lock.LockDirError) as info:
        with _lock.Lock('vm-1', 1, 'VM one', lock_dir=str(tmp_path / 'locks')):
            pass
    assert 'symbolic link' in str(info.value)
    assert os.listdir(str(real)) == []


def test_a_lock_directory_that_is_a_file_is_refused(tmp_path):
    (tmp_path / 'locks').write_text('x')
    with pytest.raises(_lock.LockDirError) as info:
        with _lock.Lock('vm-1', 1, 'VM one', lock_dir=str(tmp_path / 'locks')):
            pass
    assert 'lock directory' in str(info.value)


def test_a_lock_directory_of_another_user_is_refused(tmp_path, monkeypatch):
    lock_dir = tmp_path / 'locks'
    lock_dir.mkdir(mode=0o700)
    real_lstat = os.lstat

    def lstat(path):
        result = real_lstat(path)
        if path == str(lock_dir):
            return os.stat_result((result.st_mode, 1, 1, 1, 4242) + tuple(result)[5:])
        return result
    monkeypatch.setattr(_lock.os, 'lstat', lstat)
    with pytest.raises(_lock.LockDirError) as info:
        with _lock.Lock('vm-1', 1, 'VM one', lock_dir=str(lock_dir)):
            pass
    assert 'owned by uid 4242' in str(info.value)


def test_a_lock_file_that_is_a_symlink_is_not_followed(tmp_path):
    target = tmp_path / 'target'
    (tmp_path / 'vm-1.lock').symlink_to(target)
    with pytest.raises(_lock.LockDirError) as info:
        with _lock.Lock('vm-1', 1, 'VM one', lock_dir=str(tmp_path)):
            pass
    assert 'symbolic link' in str(info.value)
    assert not target.exists()


GONE = '11111111-2222-3333-4444-555555555555'
HERE = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee'


def test_remove_stale_takes_the_lock_files_of_vms_gone_from_the_host(tmp_path):
    locks = tmp_path / 'locks'
    for uuid in (GONE, HERE):
        with _lock.Lock('vm-%s' % uuid, 1, 'VM', lock_dir=str(locks)):
            pass
    (locks / 'vol-models.lock').write_text('')
    removed = _lock.remove_stale({HERE}, lock_dir=str(locks))
    assert removed == [str(locks / ('vm-%s.lock' % GONE))]
    assert sorted(os.listdir(str(locks))) == ['vm-%s.lock' % HERE, 'vol-models.lock']
    assert _lock.remove_stale({HERE}, lock_dir=str(locks)) == []
    assert _lock.remove_stale(set(), lock_dir=str(tmp_path / 'none')) == []


def test_remove_stale_leaves_a_held_lock(tmp_path):
    locks = str(tmp_path / 'locks')
    with _lock.Lock('vm-%s' % GONE, 1, 'VM', lock_dir=locks):
        assert _lock.remove_stale(set(), lock_dir=locks) == []
    assert os.listdir(locks) == ['vm-%s.lock' % GONE]


def test_a_run_that_waited_on_a_removed_lock_file_locks_the_new_one(tmp_path):
    locks = str(tmp_path / 'locks')
    path = os.path.join(locks, 'vm-%s.lock' % GONE)
    holder = _lock.Lock('vm-%s' % GONE, 1, 'VM', lock_dir=locks).__enter__()
    got = {}

    def waiter():
        with _lock.Lock('vm-%s' % GONE, 10, 'VM', lock_dir=locks) as lock:
            got['ino'] = os.fstat(lock._fd).st_ino  # pylint: disable=protected-access
            got['path_ino'] = os.lstat(path).st_ino
    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.3)
    # What remove_stale does, with the holder standing in for it: unlink while locked, then unlock.
    os.unlink(path)
    holder.__exit__(None, None, None)
    thread.join(10)
    assert got and got['ino'] == got['path_ino'], 'the waiter locked the unlinked file: two runs could hold the lock'
