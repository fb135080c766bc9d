# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name


# The options of a run that vm_model_mount (one model) and vm_model_mounts (a VM's set) share
# (plugins/module_utils/_options.py, run_options).
class ModuleDocFragment:  # pylint: disable=too-few-public-methods

    DOCUMENTATION = r'''
options:
  persist:
    description:
      - Keep the mount across guest reboots and VM restarts (persistent domain configuration and a guest fstab line
        with C(nofail)). V(false) changes the running VM only.
    type: bool
    default: true
  guest_mount:
    description:
      - Mount the model inside the guest. V(false) only makes it available to the VM (device and bind on the
        host) and records it.
      - V(false) is the way for guests whose owners mount by themselves, and for guests whose agent refuses guest
        commands (RHEL-family guests lock it down by default); the guest is then never asked to run anything. The
        guest mounts the shared device itself, for example with the fstab line
        C(aimodel-ro /models virtiofs ro,nosuid,nodev,nofail 0 0), and finds the model in the directory named by
        RV(aimodel.kvm.vm_model_mount#module:mount.tag) below it (docs/guests.md).
    type: bool
    default: true
  force:
    description:
      - Unmount a busy guest mount lazily instead of failing (the unmounts and detaches of the run).
    type: bool
    default: false
  warmup:
    description:
      - Prefetch the model into the host's cache before attaching it.
    type: bool
    default: false
  cache:
    description:
      - virtiofs cache mode of the device. V(always) models share a device of their own (C(aimodel-ro-always)),
        since the cache mode is one per device.
      - virtiofs' third mode, C(never), is not offered - model loaders map the weights into memory (mmap), and mmap
        fails (C(ENODEV)) on a virtiofs mount without cache.
    type: str
    choices: [auto, always]
    default: auto
  read_ahead_kb:
    description:
      - The guest's readahead of the mount, in KiB, set in the guest's sysfs (C(/sys/class/bdi/<dev>/read_ahead_kb))
        after the mount. The guest kernel's default, 128 KiB, reads the weights about a third slower (see
        C(docs/performance.md)).
      - There is one readahead per device (all its models read through one guest file system), set to the
        largest value that the models of the device ask for.
      - Checked on every run and set again when it differs. A guest reboot mounts the device again from the fstab
        with the kernel's default. On a guest that runs systemd (its PID 1), a unit written and removed with the
        device's fstab line (C(/etc/systemd/system/aimodel-<ro|rw>-readahead.service), wanted by the mount unit of
        C(/run/aimodel/<ro|rw>)) sets it again after every boot. Elsewhere it stays the kernel's default until the
        next run; M(aimodel.kvm.vm_model_mount_info) reports both in RV(aimodel.kvm.vm_model_mount_info#module:mounts[].tuning).
      - V(0) leaves the guest's readahead alone.
    type: int
    default: 1024
  lock_timeout:
    description:
      - Seconds to wait for another operation on the same VM to finish.
    type: int
    default: 120
  guest_timeout:
    description:
      - Seconds the guest may take over the whole run, all its agent calls and the guest commands the run waits
        for together (reading the guest's state, then every step); each guest call gets at most what is left.
        Host work in between (mounting the volume, O(warmup), the hot-plug) does not count.
      - Past it the run fails for the VM with C(the guest of VM ... answered out of bounds - it used up the guest
        time of the run) and changes nothing further; what it did is rolled back, and the rollback gets at most
        O(agent_timeout) more of the guest's time.
      - It bounds what a guest that answers every call slowly, just within O(agent_timeout), can make a run last.
      - M(aimodel.kvm.vm_model_mount_info) bounds the guest of each VM it reports with its own, shorter
        O(aimodel.kvm.vm_model_mount_info#module:guest_report_timeout).
    type: int
    default: 300
  device_timeout:
    description:
      - Seconds to wait for the guest to discover a new device (before mounting it) and to release a detached one
        (only the first and the last model of a device attach or detach one).
    type: int
    default: 60
'''
