#!/usr/bin/env python
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run one module of the collection as its own process and print, as JSON, its result and the peak memory of
that process, for the assertions of vm_model_mount_guest_bounds:

  rc, result        the module's exit status and its result (the JSON it printed; None if it printed none)
  killed            whether it was still running after --timeout seconds (it is then killed with its children)
  peak_rss_kib      the largest resident set of the module's process (and its children), in KiB
  stderr            the end of what it wrote to standard error

  run_module.py --collections DIR --timeout S MODULE ARGS_JSON

DIR holds ansible_collections/; ARGS_JSON is a file with {"ANSIBLE_MODULE_ARGS": {...}}. The timeout is no
assertion: it only keeps a module that would never end (or grow without bound) from harming the host.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import argparse
import json
import os
import resource
import signal
import subprocess
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--collections', required=True)
    parser.add_argument('--timeout', type=float, required=True)
    parser.add_argument('module')
    parser.add_argument('args')
    opts = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=opts.collections)
    argv = [sys.executable, '-m', 'ansible_collections.aimodel.kvm.plugins.modules.' + opts.module, opts.args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    killed = False
    try:
        out, err = proc.communicate(timeout=opts.timeout)
    except subprocess.TimeoutExpired:
        killed = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    try:
        result = json.loads(out.decode('utf-8', 'replace').strip().splitlines()[-1])
    except (ValueError, IndexError):
        result = None
    json.dump({'rc': proc.returncode, 'killed': killed, 'result': result,
               'peak_rss_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
               'stderr': err.decode('utf-8', 'replace')[-2000:]}, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
