# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one reader of ``/proc/self/mountinfo``, for the host's and the guest's mount tables (pure).

The kernel writes white space and backslashes in paths as three octal digits (``\\040``); ``unescape``
reads every such escape, ``escape`` writes them the same way (fstab uses the same convention).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import re


def unescape(field):
    return re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)), field)


def escape(field):
    return re.sub(r'[\s\\]', lambda m: '\\%03o' % ord(m.group(0)), field)


def parse_mountinfo(text):
    """Mountinfo as dicts, in the kernel's order: id, dev (major:minor), root (the directory of its file
    system that the mount shows: not ``/`` for a bind mount), source, target, fstype, options (the mount's
    own: ro or rw is there), propagation (``shared:N``, ``master:N``...) and super_options (its
    superblock's). Lines of another shape are skipped."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(' - ')
        fields, rest = left.split(), right.split()
        if not sep or len(fields) < 6 or len(rest) < 2:
            continue
        mounts.append({'id': fields[0], 'dev': fields[2], 'root': unescape(fields[3]), 'source': unescape(rest[1]),
                       'target': unescape(fields[4]), 'fstype': rest[0], 'options': fields[5].split(','),
                       'propagation': fields[6:],
                       'super_options': rest[2].split(',') if len(rest) > 2 else []})
    return mounts


def visible_at(mounts, target):
    """The last (visible) mount at this path, or None."""
    found = None
    for entry in mounts:
        if entry['target'] == target:
            found = entry
    return found


def holding(mounts, path):
    """The visible mount that holds this path: the last of those with the longest mount point above it."""
    best = None
    for entry in mounts:
        top = entry['target'].rstrip('/')
        if path == entry['target'] or path.startswith(top + '/'):
            if best is None or len(entry['target']) >= len(best['target']):
                best = entry
    return best


def shows(entry, holder, path):
    """Whether the mount ``entry`` shows the directory ``path`` of the file system of ``holder`` (the mount that
    holds that path): the same file system, and its root is that directory."""
    if entry is holder or entry['dev'] != holder['dev']:
        return False
    below = path[len(holder['target'].rstrip('/')):]
    want = holder.get('root', '/').rstrip('/') + below
    return entry.get('root', '/').rstrip('/') == want.rstrip('/')
