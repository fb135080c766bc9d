#!/usr/bin/env python
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Collect every process's argv every 20 ms until STOPFILE exists or N seconds passed (to look for leaked secrets)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import os
import sys
import time


def main():
    seconds, out, stop = float(sys.argv[1]), sys.argv[2], sys.argv[3]
    deadline = time.monotonic() + seconds
    samples = 0
    seen = set()
    while time.monotonic() < deadline and not os.path.exists(stop):
        for pid in os.listdir('/proc'):
            if not pid.isdigit():
                continue
            try:
                with open('/proc/%s/cmdline' % pid, 'rb') as handle:
                    argv = handle.read().replace(b'\0', b' ').decode('utf-8', 'replace').strip()
            except OSError:
                continue
            if argv:
                seen.add(argv)
        samples += 1
        time.sleep(0.02)
    with open(out, 'w') as handle:
        handle.write('\n'.join(sorted(seen)) + '\n')
    print('samples: %d, distinct argv: %d' % (samples, len(seen)))


if __name__ == '__main__':
    main()
