# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Whether a path on the hypervisor is the module's own: nobody but root (or the module's user) can change what it
names. The module runs as root the client found there, mounts volumes there, and lets the client cache there; a path
that another user can swap (a directory of theirs, a group or world writable one, /tmp's sticky kind included) would
let them choose the program root runs, or where root mounts and writes.

The check follows the path the way the kernel resolves it, one component at a time and through each symbolic link,
so every directory it passes through is looked at, and the link's target too. A sticky directory that everybody can
write (``/tmp``, ``/var/tmp``) may be passed through to an entry that exists and is root's: the sticky bit keeps others
from renaming or removing it. Nothing may be created there, and it is never the path itself.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import errno
import os
import stat

from ansible_collections.aimodel.kvm.plugins.module_utils._spec import HOST_PATH_OPTIONS, SpecError

# As many links as the kernel follows in one lookup.
MAX_LINKS = 40
# The host's file system calls; unit tests replace them with a fake tree.
LSTAT = os.lstat
READLINK = os.readlink


def check_volume(connection):
    """Check each host path of the volume's settings (``_spec.desired_from_params``) that is set."""
    for key in HOST_PATH_OPTIONS:
        if connection.get(key):
            check_trusted('volume.' + key, connection[key])


def check_trusted(field, path, lstat=None, readlink=None, uid=None):
    """Raise SpecError naming ``field`` unless ``path`` (absolute) and every directory on the way to it are owned by
    root or ``uid`` (the module's effective user) and writable by neither group nor others.

    A component that does not exist ends the walk: the module creates the rest itself, in a directory only its user
    can write. ``lstat`` and ``readlink`` default to ``LSTAT`` and ``READLINK``.
    """
    lstat = lstat or LSTAT
    readlink = readlink or READLINK
    owners = (0, os.geteuid() if uid is None else uid)
    _check(field, path, '/', _lstat(field, path, '/', lstat), owners)
    pending = [part for part in path.split('/') if part]
    current = '/'
    links = 0
    sticky = None
    while pending:
        part = pending.pop(0)
        if part == '.':
            continue
        if part == '..':
            current = os.path.dirname(current)
            sticky = None
            continue
        candidate = os.path.join(current, part)
        info = _lstat(field, path, candidate, lstat)
        if info is None:
            if sticky is not None:
                raise SpecError(field, '%s: %s does not exist, and %s is writable by others (mode %04o): create %s '
                                       'first, owned by root and writable by nobody else'
                                % (path, candidate, sticky[0], sticky[1], candidate))
            return
        sticky = None
        if stat.S_ISLNK(info.st_mode):
            links += 1
            if links > MAX_LINKS:
                raise SpecError(field, '%s: more than %d symbolic links on the way' % (path, MAX_LINKS))
            try:
                target = readlink(candidate)
            except OSError as exc:
                raise SpecError(field, '%s: cannot read the symbolic link %s: %s' % (path, candidate, exc.strerror or exc))
            if target.startswith('/'):
                current = '/'
            pending = [p for p in target.split('/') if p] + pending
            continue
        if pending and _sticky_passage(info, owners):
            sticky = (candidate, stat.S_IMODE(info.st_mode))
        else:
            _check(field, path, candidate, info, owners)
        if pending and not stat.S_ISDIR(info.st_mode):
            raise SpecError(field, '%s: %s is not a directory' % (path, candidate))
        current = candidate


def _sticky_passage(info, owners):
    """A root-owned sticky directory that others may write: an entry in it can only be renamed or removed by its
    owner, so a root-owned entry that exists stays what it is."""
    return stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX and info.st_uid in owners


def _lstat(field, path, candidate, lstat):
    try:
        return lstat(candidate)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        if exc.errno == errno.ENOTDIR:
            raise SpecError(field, '%s: %s is not a directory' % (path, os.path.dirname(candidate)))
        raise SpecError(field, '%s: cannot check %s: %s' % (path, candidate, exc.strerror or exc))


def _check(field, path, candidate, info, owners):
    where = path if candidate == path else '%s (on the way to %s)' % (candidate, path)
    if info.st_uid not in owners:
        raise SpecError(field, '%s is owned by uid %d, not by root: its owner could change what the module uses there'
                        % (where, info.st_uid))
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise SpecError(field, '%s is writable by %s (mode %04o): they could change what the module uses there'
                        % (where, 'others' if info.st_mode & stat.S_IWOTH else 'its group', stat.S_IMODE(info.st_mode)))
