# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One operation per VM (and per host volume) at a time, across processes on the hypervisor."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import fcntl
import os
import re
import stat
import time

from ansible_collections.aimodel.kvm.plugins.module_utils._errors import AimodelError

DEFAULT_LOCK_DIR = '/run/aimodel/locks'


class LockTimeout(AimodelError):
    pass


class LockDirError(AimodelError):
    """The lock directory is not the module's own: whoever can change it could hold or swap every lock."""


def ensure_lock_dir(path):
    """Create the lock directory (root's, mode 0700) when missing; refuse one that is a symbolic link, not a
    directory, owned by another user than root or the module's, or writable by its group or others."""
    umask = os.umask(0o022)     # directories made on the way: 0755 whatever umask the run inherited
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError as exc:
        raise LockDirError('cannot make the lock directory %s: %s; nothing was changed' % (path, exc))
    finally:
        os.umask(umask)
    owners = (0, os.geteuid())
    if stat.S_ISLNK(info.st_mode):
        why = 'is a symbolic link'
    elif not stat.S_ISDIR(info.st_mode):
        why = 'is not a directory'
    elif info.st_uid not in owners:
        why = 'is owned by uid %d, not by root' % info.st_uid
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        why = 'is writable by its group or others (mode %04o)' % stat.S_IMODE(info.st_mode)
    else:
        return
    raise LockDirError('the lock directory %s %s: another user could hold or replace the locks of every run; '
                       'remove it (it is made again, root-owned with mode 0700) and run again; nothing was changed'
                       % (path, why))


class Lock:
    """An exclusive flock on ``<dir>/<name>.lock``, waited for up to ``timeout`` seconds.

    flock is released by the kernel when the process dies, so a crashed run never leaves a stale lock.
    """

    def __init__(self, name, timeout, what, lock_dir=None):
        self.path = os.path.join(lock_dir or DEFAULT_LOCK_DIR, re.sub(r'[^A-Za-z0-9._-]', '_', name) + '.lock')
        self.timeout = timeout
        self.what = what
        self._fd = None

    def __enter__(self):
        ensure_lock_dir(os.path.dirname(self.path))
        started = time.monotonic()
        while True:
            self._fd = self._open()
            self._wait(started)
            if _names(self.path, self._fd):
                return self
            # remove_stale unlinked the file while this run waited on it: lock the one now at the path.
            os.close(self._fd)
            self._fd = None

    def _open(self):
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise LockDirError('cannot open the lock file %s (a symbolic link is refused): %s; nothing was changed'
                               % (self.path, exc))

    def _wait(self, started):
        delay = 0.02
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except (IOError, OSError):
                if time.monotonic() - started >= self.timeout:
                    os.close(self._fd)
                    self._fd = None
                    raise LockTimeout('another operation on %s held its lock (%s) for more than %ss (lock_timeout); '
                                      'nothing was changed' % (self.what, self.path, self.timeout))
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def __exit__(self, *exc):
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        return False


def _names(path, fd):
    """Whether path still names the file open at fd (not unlinked, not replaced)."""
    try:
        at, held = os.lstat(path), os.fstat(fd)
    except OSError:
        return False
    return (at.st_dev, at.st_ino) == (held.st_dev, held.st_ino)


_VM_LOCK = re.compile(r'^vm-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.lock$')


def remove_stale(defined_uuids, lock_dir=None):
    """Remove the lock files of VMs this host no longer has (a VM migrated away or undefined): each one that no
    run holds, unlinked while locked (a run that waited on it then locks the file made anew, see Lock). Returns
    the paths removed; a file that cannot be locked or removed at once is left for the next time."""
    lock_dir = lock_dir or DEFAULT_LOCK_DIR
    try:
        names = os.listdir(lock_dir)
    except OSError:
        return []
    removed = []
    for name in sorted(names):
        match = _VM_LOCK.match(name)
        if not match or match.group(1) in defined_uuids:
            continue
        path = os.path.join(lock_dir, name)
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _names(path, fd):
                os.unlink(path)
                removed.append(path)
        except (IOError, OSError):
            pass
        finally:
            os.close(fd)
    return removed
