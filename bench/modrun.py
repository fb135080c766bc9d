#!/usr/bin/env python
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bench helper: run vm_model_mount directly (no ansible-playbook) under cProfile and say where the time went.

Usage: modrun.py MODULE_FILE ARGS_JSON OUT_JSON   (BENCH_NOPROFILE=1: no profiler, times only)
ARGS_JSON holds {"ANSIBLE_MODULE_ARGS": {...}}. OUT_JSON gets: the module's result, its wall time inside
this process (its imports included), the time of its main() alone, and the time per layer, counted on the calls
the module's orchestration (the module files, _plan.py, _mounted.py, _absent.py, _info.py and _state.py) makes into
each layer (so nothing is counted twice): libvirt (_libvirt, _record),
guest (_guest: agent round trips), juicefs (_juicefs), lock (_lock), plus the number of guest agent
round trips and of libvirt C calls.
"""

import cProfile
import io
import json
import os
import pstats
import runpy
import sys
import time

T0 = time.monotonic()
# The files that sequence the work: what they call in a layer is that layer's time.
ORCHESTRATION = ('vm_model_mount.py', 'vm_model_mount_info.py', '_plan.py', '_mounted.py', '_absent.py', '_info.py',
                 '_state.py')


def layer(filename):
    base = os.path.basename(filename)
    if base in ('_libvirt.py', '_record.py'):
        return 'libvirt'
    if base == '_guest.py':
        return 'guest'
    if base == '_juicefs.py':
        return 'juicefs'
    if base == '_lock.py':
        return 'lock'
    return None


def main():
    module_file, args_file, out_file = sys.argv[1:4]
    sys.argv = [module_file, args_file]
    stdout = io.StringIO()
    real_stdout = sys.stdout
    sys.stdout = stdout
    profile = not os.environ.get('BENCH_NOPROFILE')
    prof = cProfile.Profile()
    start = time.monotonic()
    if profile:
        prof.enable()
    try:
        # Imported under another name first (its imports, timed apart), then its main() called.
        module = runpy.run_path(module_file, run_name='aimodel_bench_module')
        imported = time.monotonic()
        try:
            module['main']()
        except SystemExit:
            pass
    finally:
        if profile:
            prof.disable()
        sys.stdout = real_stdout
    end = time.monotonic()
    wall, main_time = end - start, end - imported
    if not profile:
        text = stdout.getvalue()
        with open(out_file, 'w') as handle:
            json.dump({'result': json.loads(text[text.index('{'):]), 'wall': wall, 'main': main_time,
                       'since_start': end - T0}, handle)
        return
    stats = pstats.Stats(prof).stats
    layers = {'libvirt': 0.0, 'guest': 0.0, 'juicefs': 0.0, 'lock': 0.0}
    round_trips = 0
    libvirt_calls = 0
    for func, (_cc, ncalls, _tt, _ct, callers) in stats.items():
        filename, _line, name = func
        if name == 'command' and filename.endswith('_guest.py'):
            round_trips += ncalls
        if filename == '~' and ('libvirtmod' in name or 'virDomain' in name or 'virConnect' in name):
            libvirt_calls += ncalls
        which = layer(filename)
        if which is None:
            continue
        for caller, edge in callers.items():
            cfile = os.path.basename(caller[0])
            if cfile in ORCHESTRATION:
                layers[which] += edge[3]
    text = stdout.getvalue()
    try:
        result = json.loads(text[text.index('{'):])
    except ValueError:
        result = {'raw': text}
    with open(out_file, 'w') as handle:
        json.dump({'result': result, 'wall': wall, 'main': main_time, 'since_start': end - T0, 'layers': layers,
                   'guest_round_trips': round_trips, 'libvirt_c_calls': libvirt_calls}, handle)


if __name__ == '__main__':
    main()
