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
import time

from ansible_collections.aimodel.kvm.plugins.module_utils._errors import AimodelError

DEFAULT_LOCK_DIR = '/run/aimodel/locks'


class LockTimeout(AimodelError):
    pass


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
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        started = time.monotonic()
        delay = 0.02
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except (IOError, OSError):
                if time.monotonic() - started >= self.timeout:
                    os.close(self._fd)
                    self._fd = None
                    raise LockTimeout('another operation on %s held its lock (%s) for more than %ss (lock_timeout); '
                                      'nothing was changed' % (self.what, self.path, self.timeout))
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        return False
