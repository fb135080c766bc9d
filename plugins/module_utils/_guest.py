# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The guest side through qemu-guest-agent: exec with an argv, files, mounts, fstab, readahead.

No value is ever put into a shell command line: the shell scripts (``REPLACE_FILE_SCRIPT``,
``WRITE_VALUE_SCRIPT``) are constants and get paths and values as arguments or on standard input.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import base64
import json
import re
import time

from ansible_collections.aimodel.kvm.plugins.module_utils._errors import AimodelError
from ansible_collections.aimodel.kvm.plugins.module_utils._mountinfo import parse_mountinfo, escape

FSTAB = '/etc/fstab'
FSTYPE = 'virtiofs'
# Options of every mount the collection makes in a guest: a model is data, never programs with privileges.
MODEL_OPTIONS = ('nosuid', 'nodev')
# The mount table with each mount's ID (a new one for every mount, so a remount after a guest reboot is told
# apart) and device number (which names its readahead setting in sysfs).
MOUNTINFO = '/proc/self/mountinfo'
READ_AHEAD = '/sys/class/bdi/%s/read_ahead_kb'

# Messages of a mount that failed because the guest has not yet discovered the hot-plugged device.
_NOT_YET_RE = re.compile(r'Invalid argument|No such device|not found|No such file', re.IGNORECASE)
_BUSY_RE = re.compile(r'busy', re.IGNORECASE)
_READ_ONLY_RE = re.compile(r'Read-only file system', re.IGNORECASE)
# A guest kernel without virtiofs: util-linux's mount says so; busybox's says ENODEV ("No such device"), which is
# told apart from a device the guest has not discovered yet by the kernel's list of file systems.
_NO_FSTYPE_RE = re.compile(r"unknown filesystem type", re.IGNORECASE)
_NO_DEVICE_RE = re.compile(r'No such device', re.IGNORECASE)
FILESYSTEMS = '/proc/filesystems'
NO_VIRTIOFS = ('the kernel of the guest in VM %s has no virtiofs file system (%s); a guest needs Linux 5.4 or later '
               'built with CONFIG_VIRTIO_FS (docs/guests.md says how to check)')
# An agent that does not offer the guest-file-* commands (blocked with --block-rpcs, or too old).
_NO_FILE_OPS_RE = re.compile(r'has been disabled|has not been found|CommandNotFound|CommandDisabled', re.IGNORECASE)
# The agent's answer to a command it has disabled: blocked by its configuration (--block-rpcs, or left out of
# --allow-rpcs), or while the guest's file systems are frozen. qemu-ga 7.2 says "Command X has been disabled" (older
# releases "The command X has been disabled for this instance"), later ones add the reason ("Command X has been
# disabled: the agent is in frozen state").
_DISABLED_RE = re.compile(r'has been disabled|CommandDisabled', re.IGNORECASE)
_FROZEN_RE = re.compile(r'frozen state', re.IGNORECASE)
# The agent's answer to a command it does not have (a release older than the command).
_NOT_FOUND_RE = re.compile(r'has not been found|CommandNotFound', re.IGNORECASE)
# The agent commands the collection uses, by what they do: a guest command (every change in the guest, and a
# probe of a mount), and reading or writing a file (done by a guest command when the agent offers no file
# commands).
EXEC_COMMANDS = ('guest-exec', 'guest-exec-status')
FILE_READ_COMMANDS = ('guest-file-open', 'guest-file-read', 'guest-file-close')
FILE_WRITE_COMMANDS = ('guest-file-open', 'guest-file-write', 'guest-file-close')
# What an agent that answers but refuses these commands needs, said in every such error.
DISABLED_HINT = (
    'The agent answers but refuses them: on RHEL-family guests /etc/sysconfig/qemu-ga locks it down (RHEL 8: '
    'remove them from BLACKLIST_RPC; RHEL 9 family: add them to the --allow-rpcs list in FILTER_RPC_ARGS), then '
    'restart qemu-guest-agent; elsewhere see the --block-rpcs and --allow-rpcs options of qemu-ga. Or use '
    'guest_mount: false and mount the device in the guest yourself (docs/guests.md)')
FROZEN_HINT = (
    "The guest's file systems are frozen (guest-fsfreeze-freeze, virsh domfsfreeze: a backup in progress?), and "
    'while they are, the agent refuses all but a few commands; thaw them (virsh domfsthaw) and run again')
# One guest-file-read returns up to this many bytes (qemu-ga allows up to 48 MiB): mount tables and
# fstabs fit in one read.
READ_CHUNK = 1048576
# Everything the guest sends back is written by the guest's root: every read is capped. A file the module
# reads (mount table, fstab) and the output of a guest command may hold at most this many bytes, a sysfs value
# SYSFS_BYTES; past a cap the run fails for that VM ("answered out of bounds") and changes nothing further.
MAX_FILE_BYTES = 1048576
MAX_OUTPUT_BYTES = 1048576
# The longest agent reply parsed: a file chunk or the output and errors of a command, base64-encoded, fit in it.
MAX_REPLY_CHARS = 4 * (READ_CHUNK + 2 * MAX_OUTPUT_BYTES)
SYSFS_BYTES = 64
# The error of a guest that used up the guest time of the run (VM, the option that set it, seconds, when).
GUEST_TIME_SPENT = 'the guest of VM %s answered out of bounds: it used up the guest time of the run (%s, %s s) %s'
# Text that comes from the guest is cut to this many characters in messages.
MAX_GUEST_TEXT = 400
# Polling a guest process: every POLL_FAST s for the first POLL_FAST_FOR s (short guest commands end within
# a few polls), then backing off to 0.2 s; docs/performance.md has the measurements behind these values.
POLL_FAST = 0.004
POLL_FAST_FOR = 0.5
# A freshly hot-plugged device is discovered by the guest some time after the attach (PCI hot-plug): retry
# the mount every MOUNT_RETRY s for the first MOUNT_RETRY_FAST_FOR s, then back off to 1 s.
MOUNT_RETRY = 0.02
MOUNT_RETRY_FAST_FOR = 3.0
# Replace a file atomically in one guest process: resolve a symlinked path (/etc/fstab -> /persist/fstab,
# the link stays), write the content from standard input to a temporary file next to it, rename it over
# the file, and sync, so that a VM powered off right after the run does not boot with the old file (the
# reliability suite saw a removed fstab line come back after a destroy). $1 is the path.
REPLACE_FILE_SCRIPT = (
    'set -e; '
    'real=$(readlink -f "$1" 2>/dev/null) || real=; [ -n "$real" ] || real=$1; '
    'tmp="${real%/*}/.${real##*/}.aimodel-tmp"; '
    'trap \'rm -f "$tmp"\' EXIT; '
    'cat > "$tmp"; mv -f "$tmp" "$real"; trap - EXIT; sync'
)
# Write a value into a (sysfs) file in place, for agents without the file commands: $1 the value, $2 the file.
WRITE_VALUE_SCRIPT = 'printf "%s\\n" "$1" > "$2"'


class GuestError(AimodelError):
    """A guest agent or guest command failure."""

    def __init__(self, message, unreachable=False):
        super(GuestError, self).__init__(message)
        self.unreachable = unreachable


class CommandsDisabled(GuestError):
    """The agent answers, but has disabled commands a step needs (``commands``), by its configuration or because
    the guest's file systems are ``frozen``."""

    def __init__(self, vm, commands, needed_for, frozen=False):
        commands = sorted(set(commands))
        super(CommandsDisabled, self).__init__(
            'the guest agent of VM %s has disabled %s, needed for %s. %s'
            % (vm, ', '.join(commands), needed_for, FROZEN_HINT if frozen else DISABLED_HINT))
        self.commands = commands
        self.frozen = frozen


def clip(text, limit=MAX_GUEST_TEXT):
    """Guest text for a message: at most ``limit`` characters, control characters shown escaped."""
    text = ''.join(c if c.isprintable() or c in '\n\t' else '\\x%02x' % ord(c) for c in str(text)[:limit + 1])
    return text[:limit] + ('...' if len(text) > limit else '')


def _shape(value, kind, what):
    """A reply field of the expected type, else a GuestError (a bool is no number here)."""
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise GuestError('the guest agent answered out of bounds: %s is %s, not %s'
                         % (what, type(value).__name__, getattr(kind, '__name__', kind)))
    return value


def _b64(value, limit, what):
    """Decode a base64 field of a reply, refusing one whose decoded size passes ``limit``."""
    _shape(value, str, what)
    if len(value) > (limit + 2) // 3 * 4 + 4:
        raise GuestError('the guest agent answered out of bounds: %s holds more than %d bytes' % (what, limit))
    try:
        return base64.b64decode(value)
    except (TypeError, ValueError):
        raise GuestError('the guest agent answered out of bounds: %s is not base64' % what)


class ExecResult:
    def __init__(self, rc, out, err):
        self.rc = rc
        self.out = out
        self.err = err

    def __repr__(self):
        return 'ExecResult(rc=%r, out=%r, err=%r)' % (self.rc, self.out, self.err)


class Agent:
    """qemu-guest-agent of one domain. ``domain`` needs only ``agent_command(json, timeout)`` and ``name``."""

    def __init__(self, domain, timeout=30, budget=None, budget_option='guest_timeout'):
        self.domain = domain
        self.timeout = timeout
        # Seconds of guest time the whole run may spend on this guest (None: no such limit), as the option
        # ``budget_option`` set it: every agent call and every wait for a guest command counts, host work in
        # between does not. A call gets at most the time that is left; once it is spent, every further guest
        # interaction fails (see GUEST_TIME_SPENT).
        self.budget = self.guest_timeout = budget
        self.budget_option = budget_option
        self.spent = 0.0
        self.rollback_allowed = False
        self.round_trips = 0
        self._commands = None
        self.frozen = False

    def _remaining(self, timeout, what):
        """The seconds a guest interaction may take: its own timeout, at most what is left of the budget."""
        timeout = timeout or self.timeout
        if self.budget is None:
            return timeout
        left = self.budget - self.spent
        if left <= 0:
            raise GuestError(GUEST_TIME_SPENT % (self.domain.name, self.budget_option, self.guest_timeout, 'before ' + what))
        return min(timeout, left)

    def _pause(self, delay, what):
        """Sleep between polls of the guest, charged to the budget (and never past it)."""
        delay = min(delay, self._remaining(delay, what))
        started = time.monotonic()
        try:
            time.sleep(delay)
        finally:
            self.spent += time.monotonic() - started

    def allow_rollback(self, seconds):
        """``seconds`` more of guest time from now, once per run: for taking back what a failed run did in the
        guest, even when it failed because its time was spent. A second call adds nothing."""
        if self.budget is not None and not self.rollback_allowed:
            self.budget = max(self.budget, self.spent) + seconds
        self.rollback_allowed = True

    # --- what the agent allows ---------------------------------------------------------------------
    def commands(self):
        """{name: enabled} of the agent's commands, asked once per run (guest-info); {} when it does not say.

        When it has disabled one the collection uses, it is asked once more whether the guest's file systems are
        frozen (which disables them for that time), where it allows that question."""
        if self._commands is not None:
            return self._commands
        self._commands = {}
        try:
            info = self.command('guest-info')
        except CommandsDisabled:
            return self._commands
        listed = info.get('supported_commands') if isinstance(info, dict) else None
        for entry in listed if isinstance(listed, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get('name'), str):
                self._commands[entry['name']] = entry.get('enabled') is True
        if self.disabled(EXEC_COMMANDS + FILE_READ_COMMANDS) and self._commands.get('guest-fsfreeze-status'):
            try:
                self.frozen = self.command('guest-fsfreeze-status') == 'frozen'
            except CommandsDisabled:
                self.frozen = False
        return self._commands

    def disabled(self, names):
        """Those of ``names`` that the agent has disabled or does not have ([] when it did not say)."""
        known = self._commands or {}
        return [name for name in names if known and not known.get(name)]

    def require(self, names, needed_for):
        """Fail (CommandsDisabled) when the agent has disabled any of ``names``."""
        missing = self.disabled(names)
        if missing:
            raise CommandsDisabled(self.domain.name, missing, needed_for, self.frozen)

    # --- protocol ---------------------------------------------------------------------------------
    def command(self, execute, arguments=None, timeout=None):
        request = {'execute': execute}
        if arguments is not None:
            request['arguments'] = arguments
        self.round_trips += 1
        own = timeout or self.timeout
        limit = max(1, int(self._remaining(own, execute)))
        started = time.monotonic()
        try:
            answer = self.domain.agent_command(json.dumps(request), limit)
        except GuestError:
            raise
        except Exception as exc:  # the boundary raises VirtError; keep this module free of libvirt
            text = clip(exc, 2 * MAX_GUEST_TEXT)
            if _DISABLED_RE.search(text):
                # It answered: it refuses this command (its configuration, or a freeze of the guest's file systems).
                raise CommandsDisabled(self.domain.name, [execute], execute, self.frozen or bool(_FROZEN_RE.search(text)))
            if _NOT_FOUND_RE.search(text):
                raise GuestError('in VM %s, the guest agent does not have %s (an older release): %s'
                                 % (self.domain.name, execute, text))
            if 'command failed' in text.lower() and 'not responding' not in text.lower():
                # The agent answered with an error of the guest (a file it cannot open, a command it cannot run).
                raise GuestError('in VM %s, %s failed: %s' % (self.domain.name, execute, text))
            if limit < own and time.monotonic() - started >= limit:
                # It did not answer within what was left of the run's guest time: it used that up.
                raise GuestError(GUEST_TIME_SPENT % (self.domain.name, self.budget_option, self.guest_timeout, 'waiting for ' + execute))
            raise GuestError('guest agent of VM %s did not answer %s: %s' % (self.domain.name, execute, text),
                             unreachable=True)
        finally:
            self.spent += time.monotonic() - started
        if isinstance(answer, str) and len(answer) > MAX_REPLY_CHARS:
            raise GuestError('the guest agent of VM %s answered out of bounds to %s: a reply of %d characters (at most %d)'
                             % (self.domain.name, execute, len(answer), MAX_REPLY_CHARS))
        try:
            reply = json.loads(answer)
        except (TypeError, ValueError) as exc:
            raise GuestError('guest agent of VM %s gave an unreadable answer to %s: %s'
                             % (self.domain.name, execute, clip(exc)))
        if not isinstance(reply, dict):
            raise GuestError('the guest agent of VM %s answered out of bounds to %s: a %s, not an object'
                             % (self.domain.name, execute, type(reply).__name__))
        return reply.get('return')

    def run(self, argv, timeout=None, input_data=None):
        """Run argv in the guest and wait for it; returns ExecResult (stdout/stderr as text)."""
        if not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError('argv must be a non-empty list of strings')
        self.require(EXEC_COMMANDS, 'running %s in the guest' % argv[0])
        arguments = {'path': argv[0], 'arg': list(argv[1:]), 'capture-output': True}
        if input_data is not None:
            arguments['input-data'] = base64.b64encode(input_data).decode('ascii')
        started = _shape(self.command('guest-exec', arguments), dict, 'the reply to guest-exec')
        pid = _shape(started.get('pid'), int, 'the pid of guest-exec')
        start = time.monotonic()
        deadline = start + (timeout or self.timeout)
        delay = POLL_FAST
        while True:
            self._pause(delay, 'guest-exec-status')
            status = _shape(self.command('guest-exec-status', {'pid': pid}), dict, 'the reply to guest-exec-status')
            if status.get('exited'):
                break
            now = time.monotonic()
            if now >= deadline:
                raise GuestError('command %s did not finish within %ss in VM %s'
                                 % (clip(' '.join(argv)), timeout or self.timeout, self.domain.name))
            if now - start >= POLL_FAST_FOR:
                delay = min(delay * 2, 0.2)
        out = _b64(status.get('out-data', ''), MAX_OUTPUT_BYTES, 'the output of %s' % argv[0]).decode('utf-8', 'replace')
        err = _b64(status.get('err-data', ''), MAX_OUTPUT_BYTES, 'the errors of %s' % argv[0]).decode('utf-8', 'replace')
        rc = status.get('exitcode')
        if rc is None:
            rc = 128 + _shape(status.get('signal', 0), int, 'the signal of %s' % argv[0])
        _shape(rc, int, 'the exit code of %s' % argv[0])
        return ExecResult(rc, out, err)

    def check(self, argv, what, timeout=None, input_data=None):
        result = self.run(argv, timeout=timeout, input_data=input_data)
        if result.rc != 0:
            raise GuestError('%s failed in VM %s (exit %s): %s'
                             % (what, self.domain.name, result.rc, clip((result.err or result.out).strip())))
        return result

    # --- files ------------------------------------------------------------------------------------
    def read_file(self, path, limit=MAX_FILE_BYTES):
        """The text of a guest file, or None when it does not exist; more than ``limit`` bytes is refused.

        Read by the agent itself (guest-file-open, -read, -close): no process is started in the guest, which is
        faster than a guest-exec of cat and its guest-exec-status polls (docs/performance.md). An agent
        without the guest-file-* commands falls back to cat.
        """
        if self.disabled(FILE_READ_COMMANDS):
            if self.disabled(EXEC_COMMANDS):
                raise CommandsDisabled(self.domain.name, self.disabled(FILE_READ_COMMANDS + EXEC_COMMANDS),
                                       'reading %s (the file commands, or a guest command)' % path, self.frozen)
            return self._read_file_with_cat(path, limit)
        try:
            handle = self.command('guest-file-open', {'path': path, 'mode': 'r'})
        except GuestError as exc:
            text = str(exc)
            if 'No such file or directory' in text:
                return None
            if isinstance(exc, CommandsDisabled) or _NO_FILE_OPS_RE.search(text):
                if self.disabled(EXEC_COMMANDS):
                    raise CommandsDisabled(self.domain.name, ['guest-file-open'] + self.disabled(EXEC_COMMANDS),
                                           'reading %s (the file commands, or a guest command)' % path, self.frozen)
                return self._read_file_with_cat(path, limit)
            raise
        _shape(handle, int, 'the handle of guest-file-open')
        chunks, total = [], 0
        try:
            while True:
                answer = _shape(self.command('guest-file-read', {'handle': handle, 'count': min(READ_CHUNK, limit + 1)}),
                                dict, 'the reply to guest-file-read')
                chunk = _b64(answer.get('buf-b64', ''), limit + 1, 'a read of %s' % path)
                total += len(chunk)
                if total > limit:
                    raise GuestError('the guest of VM %s answered out of bounds: %s holds more than %d bytes'
                                     % (self.domain.name, path, limit))
                chunks.append(chunk)
                if answer.get('eof') or not chunk:
                    break
        finally:
            self.command('guest-file-close', {'handle': handle})
        return b''.join(chunks).decode('utf-8', 'replace')

    def _read_file_with_cat(self, path, limit=MAX_FILE_BYTES):
        result = self.run(['head', '-c', str(limit + 1), path])
        if len(result.out.encode('utf-8', 'replace')) > limit:
            raise GuestError('the guest of VM %s answered out of bounds: %s holds more than %d bytes'
                             % (self.domain.name, path, limit))
        if result.rc != 0:
            if 'No such file' in result.err:
                return None
            raise GuestError('cannot read %s in VM %s: %s' % (path, self.domain.name, clip(result.err.strip())))
        return result.out

    def write_file(self, path, text):
        """Replace a guest file atomically, durably, in one guest process (see REPLACE_FILE_SCRIPT).

        A symlinked path (for example /etc/fstab -> /persist/fstab) is resolved first, so the link stays.
        """
        result = self.run(['sh', '-c', REPLACE_FILE_SCRIPT, 'sh', path], input_data=text.encode('utf-8'))
        if result.rc != 0:
            message = clip((result.err or result.out).strip())
            if _READ_ONLY_RE.search(message):
                raise GuestError('replacing %s failed in VM %s: it is on a read-only file system in the guest (%s). '
                                 'Use persist: false (the mount then lasts until the guest reboots), or make the file '
                                 'writable (a symbolic link to a writable place is followed)'
                                 % (path, self.domain.name, message))
            raise GuestError('replacing %s failed in VM %s (exit %s): %s' % (path, self.domain.name, result.rc, message))

    # --- mounts -----------------------------------------------------------------------------------
    def mounts(self):
        """The guest's mount table (/proc/self/mountinfo) as a list of dicts (see parse_mountinfo)."""
        text = self.read_file(MOUNTINFO)
        if text is None:
            raise GuestError('reading the mount table failed in VM %s: %s does not exist' % (self.domain.name, MOUNTINFO))
        return parse_mountinfo(text)

    def read_ahead_kb(self, dev):
        """The readahead (KiB) of the guest's mount with this device number, or None when it has none."""
        text = self.read_file(READ_AHEAD % dev, SYSFS_BYTES)
        try:
            return int(text.strip()) if text is not None else None
        except ValueError:
            return None

    def set_read_ahead_kb(self, dev, kib):
        """Set the readahead of the guest's mount with this device number (sysfs: written in place)."""
        path = READ_AHEAD % dev
        data = base64.b64encode(('%d\n' % kib).encode('ascii')).decode('ascii')
        try:
            if self.disabled(FILE_WRITE_COMMANDS):
                raise CommandsDisabled(self.domain.name, self.disabled(FILE_WRITE_COMMANDS), 'writing ' + path)
            handle = self.command('guest-file-open', {'path': path, 'mode': 'w'})
        except GuestError as exc:
            if not isinstance(exc, CommandsDisabled) and not _NO_FILE_OPS_RE.search(str(exc)):
                raise GuestError('read_ahead_kb: setting the readahead of the mount (%s) failed in VM %s (is sysfs '
                                 'mounted in the guest? read_ahead_kb: 0 leaves it alone): %s' % (path, self.domain.name, exc))
            self.check(['sh', '-c', WRITE_VALUE_SCRIPT, 'sh', str(int(kib)), path],
                       'setting the readahead of %s' % dev)
            return
        try:
            self.command('guest-file-write', {'handle': handle, 'buf-b64': data})
        finally:
            self.command('guest-file-close', {'handle': handle})

    def make_dirs(self, path):
        """mkdir -p; returns the directories it created (so a rollback can remove exactly those)."""
        result = self.check(['mkdir', '-p', '-v', path], 'mount_path: creating the mount point %s' % path)
        return re.findall(r"created directory:? '([^']+)'", result.out)

    def remove_dirs(self, created):
        """rmdir what make_dirs created, deepest first (only empty directories go)."""
        if created:
            self.check(['rmdir'] + [d.rstrip('/') or '/' for d in reversed(created)], 'removing %s' % created[0])

    def mount_virtiofs(self, tag, path, read_only, wait=30.0, options=()):
        """Mount (the mount point exists), retrying while the guest discovers a freshly hot-plugged device."""
        argv = ['mount', '-t', FSTYPE, '-o', ','.join(('ro' if read_only else 'rw',) + tuple(options)), tag, path]
        start = time.monotonic()
        deadline = start + wait
        delay = MOUNT_RETRY
        checked = False
        while True:
            result = self.run(argv)
            if result.rc == 0:
                return
            message = (result.err or result.out).strip()
            if _NO_FSTYPE_RE.search(message):
                raise GuestError(NO_VIRTIOFS % (self.domain.name, clip(message)))
            if _NO_DEVICE_RE.search(message) and not checked:
                # The mount has made the kernel load the virtiofs module where it has one: absent now, it has none.
                checked = True
                if not self.has_virtiofs():
                    raise GuestError(NO_VIRTIOFS % (self.domain.name, clip(message)))
            now = time.monotonic()
            if not _NOT_YET_RE.search(message) or now >= deadline:
                raise GuestError('mounting %s at %s failed in VM %s (exit %s): %s'
                                 % (tag, path, self.domain.name, result.rc, message))
            self._pause(delay, 'mount')
            if now - start >= MOUNT_RETRY_FAST_FOR:
                delay = min(delay * 2, 1.0)

    def has_virtiofs(self):
        """Whether the guest kernel lists virtiofs among its file systems (True when that cannot be read)."""
        try:
            text = self.read_file(FILESYSTEMS, 64 * 1024)
        except GuestError:
            return True
        return text is None or any(line.split()[-1:] == [FSTYPE] for line in text.splitlines())

    def bind_mount(self, source, path, read_only):
        """Bind a directory of a device's base mount onto a mount point (read-only where asked; nosuid, nodev)."""
        self.check(['mount', '-o', 'bind,%s,%s' % ('ro' if read_only else 'rw', ','.join(MODEL_OPTIONS)), source, path],
                   'binding %s onto %s' % (source, path))

    def umount(self, path, lazy=False):
        argv = ['umount', '-l', path] if lazy else ['umount', path]
        result = self.run(argv)
        if result.rc != 0:
            message = (result.err or result.out).strip()
            busy = bool(_BUSY_RE.search(message))
            raise GuestError('unmounting %s failed in VM %s%s: %s'
                             % (path, self.domain.name,
                                ' (the mount is busy: a process in the guest uses it; stop it or use force: true)'
                                if busy else '', message))

    def accessible_many(self, paths):
        """Whether each mount answers in the guest (False for a dead virtiofs mount, which fails with
        "Transport endpoint is not connected"); one guest command for all of them.

        statfs is never answered from the guest's caches (a stat or a listing of the directory can be,
        for a second after the last access), so it reaches virtiofsd and the host volume every time.
        """
        result = self.run(['stat', '-f', '-c', '%n'] + list(paths))
        answered = set(line.strip() for line in result.out.splitlines())
        return dict((path, path in answered) for path in paths)


# --- fstab (pure) ---------------------------------------------------------------------------------
# A line is found by its first field: the device tag for a device's base mount, the directory below the
# base for a model's bind (and a model's own tag for a model mounted as a device of its own).

def fstab_base_line(device, base, read_only):
    """The base mount of a shared device: nofail, so a guest boots even when the device is gone."""
    mode = 'ro' if read_only else 'rw'
    return '%s %s %s %s,%s,nofail 0 0' % (device, escape(base), FSTYPE, mode, ','.join(MODEL_OPTIONS))


def fstab_bind_line(source, mount_path, base, read_only):
    """A model's bind from its device's base mount; systemd orders it after the base mount, busybox by the
    order of the lines (the base line comes first)."""
    return '%s %s none bind,%s,%s,nofail,x-systemd.requires-mounts-for=%s 0 0' % (
        escape(source), escape(mount_path), 'ro' if read_only else 'rw', ','.join(MODEL_OPTIONS), escape(base))


def fstab_line(tag, mount_path, read_only):
    """The line of a model mounted as a virtiofs device of its own."""
    return '%s %s %s %s,nofail 0 0' % (tag, escape(mount_path), FSTYPE, 'ro' if read_only else 'rw')


def _first_field(line):
    stripped = line.strip()
    if not stripped or stripped.startswith('#'):
        return None
    return stripped.split()[0]


def fstab_find(text, first):
    for line in (text or '').splitlines():
        if _first_field(line) == escape(first):
            return line.strip()
    return None


def fstab_without(text, first):
    lines = [line for line in (text or '').splitlines() if _first_field(line) != escape(first)]
    return '\n'.join(lines) + ('\n' if lines else '')


def fstab_with(text, first, line):
    """The fstab with exactly one line for this first field: replaced where it is, else added at the end."""
    lines = (text or '').splitlines()
    found = [i for i, existing in enumerate(lines) if _first_field(existing) == escape(first)]
    if found:
        lines[found[0]] = line
        lines = [existing for i, existing in enumerate(lines) if i not in found[1:]]
    else:
        lines.append(line)
    return '\n'.join(lines) + '\n'


def fstab_before(text, first, line, prefix):
    """The fstab with exactly one line for this first field, before the first line whose first field starts
    with ``prefix`` (a device's base line before the binds from it); unchanged when it already is."""
    lines = (text or '').splitlines()
    fields = [_first_field(existing) for existing in lines]
    later = [i for i, f in enumerate(fields) if f is not None and f.startswith(escape(prefix))]
    mine = [i for i, f in enumerate(fields) if f == escape(first)]
    if len(mine) == 1 and lines[mine[0]].strip() == line and (not later or mine[0] < later[0]):
        return text
    kept = [existing for i, existing in enumerate(lines) if i not in mine]
    fields = [_first_field(existing) for existing in kept]
    later = [i for i, f in enumerate(fields) if f is not None and f.startswith(escape(prefix))]
    kept.insert(later[0] if later else len(kept), line)
    return '\n'.join(kept) + '\n'
