# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bench section "noop": 8 mounts already in place against 8 ansible.builtin.stat, alternating; then the
same per item, run directly."""

import json
import os
import shutil
import subprocess
import tempfile
import time

from common import MODELS, PLAY_MOUNT, PLAY_STAT, fmt, ratio, say, summary


def run(b):
    say('== 2. No-op cost: 8 mounts already in place vs 8 ansible.builtin.stat (%d runs, alternating) ==' % b.runs)
    b.playbook(PLAY_MOUNT, [b.vm], MODELS)
    mod_t, mod_w, stat_t, stat_w = [], [], [], []
    for _try in range(b.runs):
        w, t, changed = b.playbook(PLAY_MOUNT, [b.vm], MODELS)
        assert not changed, 'the no-op run changed something'
        mod_t.append(t)
        mod_w.append(w)
        w, t, _changed = b.playbook(PLAY_STAT, [b.vm], MODELS)
        stat_t.append(t)
        stat_w.append(w)
    # Per item: the module's process (no profiler) and the stat module's process, run directly, alternating.
    mod_p, mod_main, stat_p = [], [], []
    for _try in range(3 * b.runs):
        data = b.modrun(b.module_args(b.vm, MODELS[0]), profile=False)
        mod_p.append(data['outer'])
        mod_main.append(data['main'])
        stat_p.append(stat_process(b, os.path.join(b.host_point, b.source)))
    prof = b.modrun(b.module_args(b.vm, MODELS[0]))
    b.results['noop_item'] = {'module_process': summary(mod_p), 'module_main': summary(mod_main),
                              'stat_process': summary(stat_p),
                              'module_ansible': summary(mod_t)['median'] / len(MODELS) - summary(mod_p)['median'],
                              'stat_ansible': summary(stat_t)['median'] / len(MODELS) - summary(stat_p)['median']}
    b.results['noop'] = {'module_task': summary(mod_t), 'stat_task': summary(stat_t), 'module_wall': summary(mod_w),
                         'stat_wall': summary(stat_w), 'ratio_task': ratio(mod_t, stat_t), 'ratio_wall': ratio(mod_w, stat_w),
                         'direct_noop': {'in_module': prof['wall'], 'main': prof['main'], 'layers': prof['layers'],
                                         'guest_round_trips': prof['guest_round_trips'],
                                         'libvirt_c_calls': prof['libvirt_c_calls']}}
    r = b.results['noop']
    say('8 x vm_model_mount (no-op), task   %s' % fmt(mod_t))
    say('8 x stat,                   task   %s   ratio %.2f' % (fmt(stat_t), r['ratio_task']))
    say('whole ansible-playbook: mounts %s, stats %s, ratio %.2f' % (fmt(mod_w), fmt(stat_w), r['ratio_wall']))
    n = b.results['noop_item']
    say('per item: vm_model_mount %.3f s = Ansible %.3f s + its process %s (main() %.3f s); stat %.3f s = Ansible '
        '%.3f s + its process %s' % (summary(mod_t)['median'] / len(MODELS), n['module_ansible'], fmt(mod_p),
                                     n['module_main']['median'], summary(stat_t)['median'] / len(MODELS),
                                     n['stat_ansible'], fmt(stat_p)))
    d = r['direct_noop']
    say('one no-op, profiled: imports + main() %.3f s, main() %.3f s; libvirt %.3f s, guest %.3f s (%d agent round '
        'trips), juicefs %.3f s, lock %.3f s; %d libvirt C calls'
        % (d['in_module'], d['main'], d['layers']['libvirt'], d['layers']['guest'], d['guest_round_trips'],
           d['layers']['juicefs'], d['layers']['lock'], d['libvirt_c_calls']))
    say()


def stat_process(b, path):
    """ansible.builtin.stat run directly (python process, no ansible-playbook) on a path: its wall time."""
    work = tempfile.mkdtemp(dir=b.dir)
    try:
        with open(os.path.join(work, 'args.json'), 'w') as handle:
            json.dump({'ANSIBLE_MODULE_ARGS': {'path': path}}, handle)
        start = time.monotonic()
        subprocess.run([b.py, '-m', 'ansible.modules.stat', os.path.join(work, 'args.json')], check=True,
                       stdout=subprocess.DEVNULL)
        return time.monotonic() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)
