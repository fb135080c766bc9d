# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bench section "reboot": the data path after a guest reboot with no run, on the lab's Debian 12 systemd guest.

One model is mounted (warmup: true, so the host's JuiceFS cache holds it) next to a virtio-blk image of the same
file. Each run reboots the guest through its agent and waits until the model is mounted again by the guest's fstab;
then it reads the file with the readahead the guest came back with (the collection's unit sets it), with the guest
kernel's default readahead (set by hand, what a guest without the unit has), and from virtio-blk, in an order that
alternates, page caches dropped before each read. A no-op run of the module after the reboot shows that nothing was
left to do, and what reading the guest's tuning (its PID 1 and the unit) costs in that run.
"""

import os
import sys
import time

import libvirt  # pylint: disable=import-error

from common import fmt, ratio, say, summary
from data_path import BLK_POINT, KERNEL_READ_AHEAD_KB, blk_image, dd, detach_blk, guest_mount_dev, mount_blk

sys.path.insert(0, os.environ['BENCH_COLLECTIONS'])
from ansible_collections.aimodel.kvm.plugins.module_utils._tuning import unit_path  # noqa: E402  pylint: disable=wrong-import-position

MODEL = 'bench-data'
MOUNT_PATH = '/mnt/models/' + MODEL
BOOT_ID = '/proc/sys/kernel/random/boot_id'


def boot_id(b, name):
    try:
        rc, out, _err = b.gexec(name, ['cat', BOOT_ID], timeout=10)
    except Exception:  # pylint: disable=broad-except
        return None    # the agent is gone (the guest is going down or not up yet)
    return out.strip() if rc == 0 else None


def reboot(b, name, timeout=300):
    """Reboot the guest through its agent; seconds until the agent answers from the new boot, and until the
    model's mount and its readahead are back (the fstab mount and the unit after it), and that readahead."""
    before = boot_id(b, name)
    start = time.monotonic()
    b.dom(name).reboot(libvirt.VIR_DOMAIN_REBOOT_GUEST_AGENT)
    while True:
        now = boot_id(b, name)
        if now and now != before:
            break
        if time.monotonic() > start + timeout:
            raise RuntimeError('%s did not come back within %d s of a reboot' % (name, timeout))
        time.sleep(0.5)
    agent_s = time.monotonic() - start
    ra_file, kib = None, None
    while time.monotonic() < start + timeout:
        try:
            ra_file = '/sys/class/bdi/%s/read_ahead_kb' % guest_mount_dev(b, name, MOUNT_PATH)
            _rc, out, _err = b.gexec(name, ['cat', ra_file])
            kib = int(out)
        except (RuntimeError, ValueError):
            time.sleep(0.2)
            continue
        if kib != KERNEL_READ_AHEAD_KB:
            break
        # Mounted, but the unit may not have run yet: give it a few seconds before taking the value as it is.
        if time.monotonic() > start + agent_s + 20:
            break
        time.sleep(0.2)
    if ra_file is None:
        raise RuntimeError('%s is not mounted in %s after the reboot' % (MOUNT_PATH, name))
    return agent_s, time.monotonic() - start, ra_file, kib


def timed_read(b, name, path):
    """Seconds of one guest-file read of a small file (open, read, close: what reading the tuning costs)."""
    start = time.monotonic()
    handle = b.agent(name, 'guest-file-open', {'path': path})
    try:
        b.agent(name, 'guest-file-read', {'handle': handle, 'count': 4096})
    finally:
        b.agent(name, 'guest-file-close', {'handle': handle})
    return time.monotonic() - start


def run(b):  # pylint: disable=too-many-locals,too-many-statements
    name = b.vm_deb
    say('== 8. Data path after a guest reboot with no run: %s (Debian 12, systemd), %d reboots ==' % (name, b.runs))
    b.wait_agent(name)
    mounted = b.modrun(b.module_args(name, MODEL, warmup=True), profile=False)['result']['mount']
    device = mounted['device']
    img, disk = blk_image(b)
    b.dom(name).attachDeviceFlags(disk, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    vfile, bfile = MOUNT_PATH + '/model.safetensors', BLK_POINT + '/model.safetensors'
    agent_s, back_s, ra_after = [], [], []
    kept, kernel, blk, noop, tuning_read = [], [], [], [], []
    unit = unit_path(device)
    try:
        for run_no in range(b.runs):
            a_s, m_s, ra_file, kib = reboot(b, name)
            agent_s.append(a_s)
            back_s.append(m_s)
            ra_after.append(kib)
            mount_blk(b, name)   # the image stays attached over the reboot; only the fstab's mounts come back
            reads = [('kept', kept), ('kernel', kernel), ('blk', blk)]
            for label, into in (reads if run_no % 2 == 0 else list(reversed(reads))):
                if label == 'kernel':
                    b.gwrite(name, ra_file, '%d\n' % KERNEL_READ_AHEAD_KB)
                b.drop_caches([name])
                into.append(dd(b, name, bfile if label == 'blk' else vfile))
                if label == 'kernel':
                    b.gwrite(name, ra_file, '%d\n' % kib)
            b.gexec(name, ['umount', BLK_POINT])
            result = b.modrun(b.module_args(name, MODEL), profile=False)
            if result['result'].get('changed'):
                raise RuntimeError('the first run after the reboot changed something: %s' % result['result'].get('msg'))
            noop.append(result['outer'])
            tuning_read.append(timed_read(b, name, '/proc/1/comm') + timed_read(b, name, unit))
        prof = b.modrun(b.module_args(name, MODEL))
    finally:
        b.gexec(name, ['umount', BLK_POINT])
        detach_blk(b, name, img, disk)
        b.unmount_all([(name, MODEL)])
    size = os.path.getsize(os.path.join(b.vars['lab_model_host_dir'], 'model.safetensors'))

    def rates(values):
        return [size / 1e6 / v for v in values]
    r = {'vm': name, 'device': device, 'read_ahead_kb_module': mounted['read_ahead_kb'],
         'read_ahead_kb_after_reboot': ra_after, 'reboot_to_agent_s': summary(agent_s),
         'reboot_to_tuned_mount_s': summary(back_s),
         'virtiofs_after_reboot_MBps': summary(rates(kept)),
         'virtiofs_after_reboot_kernel_readahead_MBps': summary(rates(kernel)),
         'virtio_blk_after_reboot_MBps': summary(rates(blk)),
         'ratio_after_reboot_blk': ratio(rates(kept), rates(blk)),
         'ratio_kernel_readahead_blk': ratio(rates(kernel), rates(blk)),
         'ratio_kept_kernel': ratio(rates(kept), rates(kernel)),
         'noop_after_reboot_process_s': summary(noop), 'tuning_reads_s': summary(tuning_read),
         'noop_profiled': {'in_module': prof['wall'], 'guest': prof['layers']['guest'],
                           'guest_round_trips': prof['guest_round_trips']}}
    b.results['reboot'] = r
    say('reboot through the agent: agent answers after %s, the model mounted with its readahead after %s'
        % (fmt(agent_s), fmt(back_s)))
    say('readahead after the reboot (no run): %s KiB (the module asks for %d; the kernel default is %d)'
        % (', '.join(str(k) for k in ra_after), mounted['read_ahead_kb'], KERNEL_READ_AHEAD_KB))
    say('virtio-blk after the reboot                            %s' % fmt(r['virtio_blk_after_reboot_MBps'], 'MB/s', 0))
    say('virtiofs after the reboot, readahead as the guest kept  %s   ratio to blk %.2f'
        % (fmt(r['virtiofs_after_reboot_MBps'], 'MB/s', 0), r['ratio_after_reboot_blk']))
    say('the same with the kernel readahead %d KiB (no unit)      %s   ratio to blk %.2f; kept/kernel %.2f'
        % (KERNEL_READ_AHEAD_KB, fmt(r['virtiofs_after_reboot_kernel_readahead_MBps'], 'MB/s', 0),
           r['ratio_kernel_readahead_blk'], r['ratio_kept_kernel']))
    p = r['noop_profiled']
    say('first run after the reboot: no change, its process %s; one profiled: %.3f s in the module, guest %.3f s '
        '(%d agent round trips), of which reading the tuning (PID 1, the unit: 2 file reads) %s'
        % (fmt(noop), p['in_module'], p['guest'], p['guest_round_trips'], fmt(tuning_read)))
    say()
