# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bench section "data": sequential read of model.safetensors in the guest: virtiofs (cold, after warmup,
with the kernel's readahead, warm, over a plain directory) against virtio-blk, and on the host; the cold and
warm reads also through the old layout's mount (the model's own device), alternating with the new one."""

import os
import re
import shutil
import subprocess
import time

import libvirt  # pylint: disable=import-error

from common import fmt, ratio, say, summary

KERNEL_READ_AHEAD_KB = 128      # the guest kernel's default readahead of a virtiofs mount
DD_TIMING = set()               # how dd() timed its reads, for the section's first line
BLK_POINT = '/mnt/bench-blk'    # where the guest mounts the virtio-blk image


def dd(b, name, path):
    """Seconds of a sequential read in the guest, as dd itself reports them when it does (GNU dd, busybox
    built with its status line: "... copied, 0.352 s"), else the wall time around the command, polled every
    4 ms (the lab's busybox dd prints no time)."""
    start = time.monotonic()
    rc, out, err = b.gexec(name, ['dd', 'if=' + path, 'of=/dev/null', 'bs=1M'])
    wall = time.monotonic() - start
    assert rc == 0, err
    found = re.search(r'copied, ([0-9.]+) s', err + out)
    if found and float(found.group(1)) > 0:
        DD_TIMING.add('by dd itself')
        return float(found.group(1))
    DD_TIMING.add('around the guest command (polled every 4 ms; ~10 ms of agent round trips included)')
    return wall


def host_dd(path):
    start = time.monotonic()
    subprocess.run(['dd', 'if=' + path, 'of=/dev/null', 'bs=1M'], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def guest_mount_dev(b, name, path):
    """major:minor of the (last) mount at path in the guest, from its mountinfo."""
    _rc, out, _err = b.gexec(name, ['cat', '/proc/self/mountinfo'])
    found = None
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == path:
            found = fields[2]
    if found is None:
        raise RuntimeError('%s is not mounted in %s' % (path, name))
    return found


def blk_image(b):
    """An ext4 image holding a copy of model.safetensors, and its disk XML (virtio-blk vdb, read-only)."""
    size = os.path.getsize(os.path.join(b.vars['lab_model_host_dir'], 'model.safetensors'))
    img = os.path.join(b.dir, 'blk.img')
    src = os.path.join(b.dir, 'blk-src')
    os.makedirs(src, exist_ok=True)
    shutil.copyfile(os.path.join(b.vars['lab_model_host_dir'], 'model.safetensors'), os.path.join(src, 'model.safetensors'))
    if os.path.exists(img):
        os.unlink(img)
    subprocess.run(['mkfs.ext4', '-q', '-F', '-d', src, img, '%dM' % (size // 2**20 + 40)], check=True)
    shutil.rmtree(src)
    disk = ("<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='%s'/>"
            "<target dev='vdb' bus='virtio'/><readonly/></disk>" % img)
    return img, disk


def mount_blk(b, name, point=BLK_POINT):
    """Mount the attached image in the guest (read-only); the guest may need a moment to see the disk."""
    b.gexec(name, ['mkdir', '-p', point])
    err = ''
    for _try in range(100):
        rc, _out, err = b.gexec(name, ['mount', '-t', 'ext4', '-o', 'ro,noload', '/dev/vdb', point])
        if rc == 0:
            return
        time.sleep(0.1)
    raise RuntimeError('cannot mount the virtio-blk disk in the guest: %s' % err)


def detach_blk(b, name, img, disk):
    b.dom(name).detachDeviceFlags(disk, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    for _try in range(100):
        if img not in b.dom(name).XMLDesc(0):
            break
        time.sleep(0.1)
    os.unlink(img)


def run(b):
    say('== 3. Data path: sequential read of model.safetensors in the guest (%d runs, alternating) ==' % b.runs)
    size = os.path.getsize(os.path.join(b.vars['lab_model_host_dir'], 'model.safetensors'))
    img, disk = blk_image(b)
    b.dom().attachDeviceFlags(disk, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    mount_blk(b, b.vm)
    plain_dir = b.vars['lab_model_host_dir']
    b.raw_mount('bench-plain', '/mnt/bench-plain', plain_dir)
    vfile = '/mnt/models/bench-data/model.safetensors'
    bfile = BLK_POINT + '/model.safetensors'
    pfile = '/mnt/bench-plain/model.safetensors'
    hfile = os.path.join(b.host_point, b.source, 'model.safetensors')
    names = [n for n in ('old', 'new') if n in b.layouts]
    cold, warm, warmup_s = dict((n, []) for n in names), dict((n, []) for n in names), dict((n, []) for n in names)
    hot, blk, plain, host_cold, host_warm, warm_ra = [], [], [], [], [], []
    ra_module = None
    evict = [b.juicefs, 'warmup', '--evict', os.path.join(b.host_point, b.source)]
    mounted = None
    try:
        for run in range(b.runs):
            # Each layout mounts the model in turn (alternating which goes first) and takes it away again.
            for layout in (names if run % 2 == 0 else list(reversed(names))):
                b.modrun(b.module_args(b.vm, 'bench-data'), profile=False, layout=layout)
                mounted = layout
                # The guest's readahead of the mount: the modules set it (read_ahead_kb, 1024 KiB by default); one
                # measurement puts back the guest kernel's default (128 KiB), as read_ahead_kb: 0 would leave it.
                ra_file = '/sys/class/bdi/%s/read_ahead_kb' % guest_mount_dev(b, b.vm, '/mnt/models/bench-data')
                _rc, ra_now, _err = b.gexec(b.vm, ['cat', ra_file])
                subprocess.run(evict, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                b.drop_caches()
                cold[layout].append(dd(b, b.vm, vfile))
                if layout == 'new':
                    ra_module = ra_now
                    hot.append(dd(b, b.vm, vfile))
                subprocess.run(evict, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                b.drop_caches()
                warmup_s[layout].append(b.modrun(b.module_args(b.vm, 'bench-data', warmup=True), profile=False,
                                                 layout=layout)['wall'])
                b.drop_caches()   # page caches only: the JuiceFS disk cache the warmup filled stays
                warm[layout].append(dd(b, b.vm, vfile))
                if layout == 'new':
                    b.gwrite(b.vm, ra_file, '%d\n' % KERNEL_READ_AHEAD_KB)
                    b.drop_caches()
                    warm_ra.append(dd(b, b.vm, vfile))
                    b.gwrite(b.vm, ra_file, ra_now)
                b.unmount_all([(b.vm, 'bench-data')], layout)
                mounted = None
            b.drop_caches()
            blk.append(dd(b, b.vm, bfile))
            b.drop_caches()
            plain.append(dd(b, b.vm, pfile))
            subprocess.run(evict, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            b.drop_caches()
            host_cold.append(host_dd(hfile))
            b.drop_caches()
            host_warm.append(host_dd(hfile))
    finally:
        b.raw_unmount('bench-plain', '/mnt/bench-plain', plain_dir)
        b.gexec(b.vm, ['umount', BLK_POINT])
        detach_blk(b, b.vm, img, disk)
        if mounted:
            b.unmount_all([(b.vm, 'bench-data')], mounted)
    mb = size / 1e6

    def rates(values):
        return [mb / v for v in values]

    def speed(values):
        return summary(rates(values))
    r = {'bytes': size, 'virtiofs_cold_MBps': speed(cold['new']), 'virtiofs_warmup_MBps': speed(warm['new']),
         'virtiofs_hot_MBps': speed(hot), 'virtio_blk_cold_MBps': speed(blk),
         'read_ahead_kb_module': int(ra_module), 'read_ahead_kb_kernel': KERNEL_READ_AHEAD_KB,
         'virtiofs_warmup_kernel_readahead_MBps': speed(warm_ra),
         'ratio_warm_kernel_ra_blk': ratio(rates(warm_ra), rates(blk)),
         'warmup_module_run_s': summary(warmup_s['new']), 'virtiofs_plain_dir_MBps': speed(plain),
         'host_juicefs_cold_MBps': speed(host_cold), 'host_juicefs_cached_MBps': speed(host_warm),
         'ratio_plain_blk': ratio(rates(plain), rates(blk)),
         'ratio_warm_blk': ratio(rates(warm['new']), rates(blk)),
         'ratio_cold_blk': ratio(rates(cold['new']), rates(blk)),
         'ratio_warm_cold': ratio(rates(warm['new']), rates(cold['new']))}
    if 'old' in cold:
        r['old'] = {'virtiofs_cold_MBps': speed(cold['old']), 'virtiofs_warmup_MBps': speed(warm['old']),
                    'warmup_module_run_s': summary(warmup_s['old']),
                    'ratio_warm_blk': ratio(rates(warm['old']), rates(blk)),
                    'ratio_cold_blk': ratio(rates(cold['old']), rates(blk)),
                    'ratio_new_old_warm': ratio(rates(warm['new']), rates(warm['old'])),
                    'ratio_new_old_cold': ratio(rates(cold['new']), rates(cold['old']))}
    b.results['data_path'] = r
    say('%d bytes; guest dd bs=1M to /dev/null, timed %s' % (size, ' and '.join(sorted(DD_TIMING))))
    say('virtio-blk (ext4 image, host+guest caches dropped)     %s' % fmt(r['virtio_blk_cold_MBps'], 'MB/s', 0))
    say('virtiofs cold (JuiceFS cache evicted, caches dropped)  %s   ratio to blk %.2f'
        % (fmt(r['virtiofs_cold_MBps'], 'MB/s', 0), r['ratio_cold_blk']))
    say('virtiofs after warmup: true (page caches dropped)      %s   ratio to blk %.2f, to cold %.2f'
        % (fmt(r['virtiofs_warmup_MBps'], 'MB/s', 0), r['ratio_warm_blk'], r['ratio_warm_cold']))
    say('the same with the guest kernel readahead %d KiB (module: %s)  %s   ratio to blk %.2f'
        % (KERNEL_READ_AHEAD_KB, ra_module.strip(), fmt(r['virtiofs_warmup_kernel_readahead_MBps'], 'MB/s', 0),
           r['ratio_warm_kernel_ra_blk']))
    say('virtiofs second read (caches warm)                     %s' % fmt(r['virtiofs_hot_MBps'], 'MB/s', 0))
    say('virtiofs over a plain host directory (no JuiceFS)      %s   ratio to blk %.2f'
        % (fmt(r['virtiofs_plain_dir_MBps'], 'MB/s', 0), r['ratio_plain_blk']))
    say('on the host, JuiceFS mount: cold %s; from its disk cache %s'
        % (fmt(r['host_juicefs_cold_MBps'], 'MB/s', 0), fmt(r['host_juicefs_cached_MBps'], 'MB/s', 0)))
    say('module run with warmup: true (the warmup itself)        %s' % fmt(warmup_s['new']))
    if 'old' in r:
        o = r['old']
        say('old layout (%s: the model\'s own device on its JuiceFS directory), the same reads:' % (b.old_ref or 'old'))
        say('  cold                                                 %s   ratio to blk %.2f; new/old %.2f'
            % (fmt(o['virtiofs_cold_MBps'], 'MB/s', 0), o['ratio_cold_blk'], o['ratio_new_old_cold']))
        say('  after warmup: true                                   %s   ratio to blk %.2f; new/old %.2f'
            % (fmt(o['virtiofs_warmup_MBps'], 'MB/s', 0), o['ratio_warm_blk'], o['ratio_new_old_warm']))
        say('  module run with warmup: true                         %s' % fmt(warmup_s['old']))
    say()
