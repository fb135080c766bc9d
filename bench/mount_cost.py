# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bench section "mount": one model into the running VM, against the floor done by hand (virsh, and the API
in one process), alternating."""

from common import PLAY_MOUNT, fmt, ratio, say, summary


def run(b):
    say('== 1. Mount cost: one model into the running VM %s (%d runs, alternating) ==' % (b.vm, b.runs))
    task, wall, direct, direct_in, direct_main, raw, raw_virsh = [], [], [], [], [], [], []
    for _try in range(b.runs):
        w, t, changed = b.playbook(PLAY_MOUNT, [b.vm], ['bench-one'])
        assert changed
        task.append(t)
        wall.append(w)
        b.unmount_all([(b.vm, 'bench-one')])
        raw_virsh.append(b.raw_mount_virsh('bench-raw', '/mnt/models/bench-raw'))
        b.raw_unmount('bench-raw', '/mnt/models/bench-raw')
        raw.append(b.raw_mount('bench-raw', '/mnt/models/bench-raw'))
        b.raw_unmount('bench-raw', '/mnt/models/bench-raw')
        data = b.modrun(b.module_args(b.vm, 'bench-one'), profile=False)
        direct.append(data['outer'])
        direct_in.append(data['wall'])
        direct_main.append(data['main'])
        b.unmount_all([(b.vm, 'bench-one')])
    b.results['mount_cost'] = {'task': summary(task), 'playbook_wall': summary(wall), 'direct_process': summary(direct),
                               'direct_in_module': summary(direct_in), 'direct_main': summary(direct_main),
                               'raw': summary(raw), 'raw_virsh': summary(raw_virsh),
                               'ratio_task_raw_virsh': ratio(task, raw_virsh),
                               'ratio_task_raw': ratio(task, raw), 'ratio_direct_raw': ratio(direct, raw),
                               'ratio_in_module_raw': ratio(direct_in, raw), 'ratio_main_raw': ratio(direct_main, raw)}
    r = b.results['mount_cost']
    say('floor by hand: virsh attach-device --live --config + virsh qemu-agent-command mkdir, mount   %s' % fmt(raw_virsh))
    say('floor in one process: attachDeviceFlags(LIVE|CONFIG) + guest-exec mkdir, mount             %s' % fmt(raw))
    say('module task (callback: task start to end)       %s   ratio %.2f to the virsh floor, %.2f to the API floor'
        % (fmt(task), r['ratio_task_raw_virsh'], r['ratio_task_raw']))
    say('module run directly (python process)            %s   ratio %.2f to the API floor' % (fmt(direct), r['ratio_direct_raw']))
    say('module run directly (imports + main())          %s   ratio %.2f to the API floor' % (fmt(direct_in), r['ratio_in_module_raw']))
    say('module run directly (main() alone)              %s   ratio %.2f to the API floor' % (fmt(direct_main), r['ratio_main_raw']))
    say('ansible-playbook wall (whole command)           %s' % fmt(wall))
    say()
