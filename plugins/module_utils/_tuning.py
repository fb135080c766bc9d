# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The guest's tuning of a shared device's base mount (its readahead), now and after a guest reboot.

The readahead is a sysfs value of the guest's file system (``/sys/class/bdi/<dev>/read_ahead_kb``): every new
mount of the device, such as the one the fstab makes at boot, starts with the guest kernel's default. On a guest
that runs systemd a small oneshot unit sets it again after every boot: the fstab line's mount unit wants it (a
link in ``<mount unit>.wants/``), and it runs once the base mount is there. It is written with the device's fstab
base line and removed with it. A guest without systemd cannot keep it: the readahead is the kernel's default after
a reboot until the next run, and ``vm_model_mount_info`` says so.

No value is put into a shell command line: the scripts are constants and get paths as arguments and the unit on
standard input.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.aimodel.kvm.plugins.module_utils import _export
from ansible_collections.aimodel.kvm.plugins.module_utils import _guest

UNIT_DIR = '/etc/systemd/system'
# The name of the guest's PID 1: "systemd" on a guest that runs it (read like a sysfs value: a few bytes).
INIT_COMM = '/proc/1/comm'
# A unit the module wrote is a few hundred bytes; more is not ours (and is not read further).
MAX_UNIT_BYTES = 4096
# Write the unit ($1) from standard input, atomically and durably, and link it into the mount unit's wants
# directory ($2): the link makes the mount unit pull it in at boot.
INSTALL_UNIT_SCRIPT = (
    'set -e; mkdir -p "${1%/*}" "${2%/*}"; tmp="${1%/*}/.${1##*/}.aimodel-tmp"; '
    'trap \'rm -f "$tmp"\' EXIT; cat > "$tmp"; mv -f "$tmp" "$1"; trap - EXIT; '
    'ln -sfn "$1" "$2"; sync'
)
# Remove the link ($2), the unit ($1), and the wants directory when it is left empty.
REMOVE_UNIT_SCRIPT = 'set -e; rm -f "$2" "$1"; rmdir "${2%/*}" 2>/dev/null || true; sync'

# Why a mount's tuning is not kept over a guest reboot (``not_kept`` in vm_model_mount_info).
NOT_PERSISTED = 'not_persisted'     # the mount itself is not in the guest's fstab (persist: false)
NO_SYSTEMD = 'no_systemd'           # the guest's PID 1 is not systemd: nothing runs after its fstab mounts
UNIT_MISSING = 'unit_missing'       # systemd, but the unit is missing or asks for another value: a run writes it
OWN_DEVICE = 'own_device'           # a model on a device of its own (an earlier layout): a run moves it


def device_read_ahead(records, device, desired=None):
    """The readahead of a shared device's base mount: the largest any model recorded on it asks for (one setting
    per device: every bind of it reads through the same guest file system); with ``desired``, that model counts
    as it is desired instead of as it is recorded."""
    wanted = [r.get('read_ahead_kb') or 0 for m, r in records.items()
              if r.get('device') == device and (desired is None or m != desired['model'])]
    if desired is not None and desired.get('device') == device:
        wanted.append(desired['read_ahead_kb'] or 0)
    return max(wanted) if wanted else 0


def _escape_path(path):
    """A path as systemd names its mount unit (systemd-escape --path)."""
    out = []
    for index, char in enumerate(path.strip('/')):
        if char == '/':
            out.append('-')
        elif char.isalnum() and char.isascii() or char in ':_' or (char == '.' and index > 0):
            out.append(char)
        else:
            out.extend('\\x%02x' % byte for byte in char.encode('utf-8'))
    return ''.join(out) or '-'


def base_of(device):
    return _export.guest_base(_export.key_of_tag(device))


def mount_unit(device):
    """The systemd mount unit of the device's base mount (made from its fstab line)."""
    return _escape_path(base_of(device)) + '.mount'


def unit_name(device):
    return '%s-readahead.service' % device


def unit_path(device):
    return '%s/%s' % (UNIT_DIR, unit_name(device))


def wants_path(device):
    """The link that makes the mount unit pull the unit in; reading through it reads the unit."""
    return '%s/%s.wants/%s' % (UNIT_DIR, mount_unit(device), unit_name(device))


def unit_text(device, kib):
    """The unit that sets the readahead of the device's base mount after it is mounted. The device number of
    the mount (which names its sysfs directory) is new with every mount: it is asked of the mount point."""
    base = base_of(device)
    return (
        '# Written by aimodel.kvm with the fstab line of %(device)s, and removed with it: the readahead of its\n'
        '# mount at %(base)s after every boot. Changes here are undone by the next run.\n'
        '[Unit]\n'
        'Description=aimodel.kvm: readahead of the virtiofs mount %(base)s\n'
        'After=%(mount)s\n'
        'ConditionPathIsMountPoint=%(base)s\n'
        '\n'
        '[Service]\n'
        'Type=oneshot\n'
        'ExecStart=/bin/sh -c \'echo "$$2" > "/sys/class/bdi/$$(mountpoint -d "$$1")/read_ahead_kb"\' sh %(base)s %(kib)d\n'
        % {'device': device, 'base': base, 'mount': mount_unit(device), 'kib': kib})


class GuestTuning:
    """What the guest keeps of the tuning, read once per run and VM: whether it runs systemd, and each device's
    unit as installed (through its wants link)."""

    def __init__(self, agent):
        self.agent = agent
        self._systemd = None
        self._units = {}

    def systemd(self):
        if self._systemd is None:
            comm = self.agent.read_file(INIT_COMM, _guest.SYSFS_BYTES)
            self._systemd = (comm or '').strip() == 'systemd'
        return self._systemd

    def installed(self, device):
        """The text of the device's unit as the mount unit pulls it in, or None."""
        if device not in self._units:
            self._units[device] = self.agent.read_file(wants_path(device), MAX_UNIT_BYTES)
        return self._units[device]

    def kept(self, device, kib):
        """(kept_by, not_kept) for a persisted base mount with this readahead."""
        if not self.systemd():
            return None, NO_SYSTEMD
        if self.installed(device) != unit_text(device, kib):
            return None, UNIT_MISSING
        return unit_path(device), None


def plan_unit(ctx, device, fstab, kib):
    """Add the guest step that makes the device's unit what the guest fstab (as the run leaves it) needs: the unit
    with this readahead when the fstab has the device's base line and a readahead is asked, else none. Read first:
    nothing is written when it is right, and nothing on a guest without systemd."""
    if ctx.state.guest_error is not None or ctx.state.fstab is None:
        # A guest that cannot be read (an agent that refuses the reads: guest_mount false) is left alone.
        return
    agent = ctx.agent
    keep = fstab is not None and _guest.fstab_find(fstab, device) is not None and bool(kib)
    path, link = unit_path(device), wants_path(device)
    if keep:
        tuning = ctx.state.read_once('guest_tuning', lambda: GuestTuning(agent))
        if not tuning.systemd():
            return
        before = tuning.installed(device)
        want = unit_text(device, kib)
        if before == want:
            return
        ctx.plan.add_guest('write the unit %s in the guest (the readahead of %s after a reboot: %d KiB)'
                           % (path, device, kib), lambda: install(agent, device, want),
                           lambda: restore(agent, device, before), 'restored the unit %s in the guest' % path,
                           unsure=True)
        return
    before = agent.read_file(path, MAX_UNIT_BYTES)
    if before is None:
        return
    ctx.plan.add_guest('remove the unit %s from the guest' % path, lambda: remove(agent, device),
                       lambda: restore(agent, device, before), 'restored the unit %s in the guest' % path,
                       unsure=True)


def install(agent, device, text):
    agent.check(['sh', '-c', INSTALL_UNIT_SCRIPT, 'sh', unit_path(device), wants_path(device)],
                'writing the unit %s' % unit_path(device), input_data=text.encode('utf-8'))


def remove(agent, device):
    agent.check(['sh', '-c', REMOVE_UNIT_SCRIPT, 'sh', unit_path(device), wants_path(device)],
                'removing the unit %s' % unit_path(device))


def restore(agent, device, before):
    """The undo of a unit step: the unit as it was (None: none)."""
    if before is None:
        remove(agent, device)
    else:
        install(agent, device, before)
