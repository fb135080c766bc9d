#!/usr/bin/env python
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""client_procs.py POINT SHA256: the JuiceFS client processes serving the mount point POINT (their argv, the names of
their environment variables, whether their META_PASSWORD has the sha256 SHA256) and the command line of every
process of the host, as JSON. It prints no variable's value."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import hashlib
import json
import os
import sys


def read(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except OSError:
        return None   # the process ended meanwhile


def main():
    point, digest = sys.argv[1], sys.argv[2]
    clients, cmdlines = [], []
    for pid in sorted((p for p in os.listdir('/proc') if p.isdigit()), key=int):
        raw = read('/proc/%s/cmdline' % pid)
        if not raw:
            continue
        # The client rewrites its command line as one string, its arguments separated by spaces.
        argv = raw.replace(b'\0', b' ').decode('utf-8', 'replace').split()
        cmdlines.append(' '.join(argv))
        if not argv or os.path.basename(argv[0]) != 'juicefs' or 'mount' not in argv or argv[-1] != point:
            continue
        environ = read('/proc/%s/environ' % pid) or b''
        entries = [entry.partition(b'=') for entry in environ.split(b'\0') if entry]
        names = sorted(name.decode('utf-8', 'replace') for name, _sep, _value in entries)
        matches = [hashlib.sha256(value).hexdigest() == digest for name, _sep, value in entries
                   if name == b'META_PASSWORD']
        clients.append({'pid': int(pid), 'argv': argv, 'env_names': names, 'meta_password_matches': any(matches)})
    json.dump({'clients': clients, 'cmdlines': cmdlines}, sys.stdout)


if __name__ == '__main__':
    main()
