# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The host side of the model repository: one FUSE mount per volume (and access mode) per host.

The metadata password reaches the client only through the ``META_PASSWORD`` environment variable:
never on a command line, never in a log, never in a record. A child process gets only the variables of
``child_env``.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import errno
import json
import os
import re
import shutil
import socket
import threading

from ansible_collections.aimodel.kvm.plugins.module_utils import _export
from ansible_collections.aimodel.kvm.plugins.module_utils import _spec
from ansible_collections.aimodel.kvm.plugins.module_utils._errors import AimodelError
from ansible_collections.aimodel.kvm.plugins.module_utils._mountinfo import parse_mountinfo, visible_at

DEFAULT_MOUNT_ROOT = '/var/lib/aimodel/volumes'
DEFAULT_LOG_DIR = '/var/log/aimodel'
CLIENT_NAME = 'juicefs'
FSTYPE = 'fuse.juicefs'
_SEARCH_DIRS = ('/usr/local/bin', '/usr/bin', '/opt/juicefs/bin')
HOST_MOUNTINFO = '/proc/self/mountinfo'
# How long a volume's statfs may take before the volume is called slow.
STATFS_TIMEOUT = 5.0


class VolumeError(AimodelError):
    pass


def mountpoint(volume, read_only, root=None):
    return os.path.join(root or DEFAULT_MOUNT_ROOT, volume, 'ro' if read_only else 'rw')


def log_path(volume, read_only, log_dir=None):
    """The client's log of the volume's host mount."""
    return os.path.join(log_dir or DEFAULT_LOG_DIR, '%s-%s.log' % (volume, 'ro' if read_only else 'rw'))


def host_mounts(path=HOST_MOUNTINFO):
    """The host's mount table (this process's mount namespace), parsed."""
    with open(path) as handle:
        return parse_mountinfo(handle.read())


def mount_table(path=HOST_MOUNTINFO):
    """Mount point -> (fstype, source) of the host's visible mounts."""
    return dict((m['target'], (m['fstype'], m['source'])) for m in host_mounts(path))


# The client's view of its own settings, at the root of every mount (JSON, readable by root only).
CONFIG_FILE = '.config'
CONFIG_MAX_BYTES = 1 << 20
_UUID_RE = re.compile(r'^[0-9a-fA-F-]{8,64}$')


def _in_thread(call, timeout):
    """call() in a thread: a hung FUSE mount must not hang the module. Returns (errno or 0, its result);
    ETIMEDOUT when it did not answer in time (its thread stays blocked until the daemon answers)."""
    outcome = {}

    def probe():
        try:
            outcome['result'] = call()
            outcome['errno'] = 0
        except OSError as exc:
            outcome['errno'] = exc.errno or errno.EIO

    worker = threading.Thread(target=probe)
    worker.daemon = True
    worker.start()
    worker.join(timeout)
    return outcome.get('errno', errno.ETIMEDOUT), outcome.get('result')


def _statfs_with_timeout(path, timeout):
    """statfs with a timeout: an errno or 0.

    statfs always reaches the FUSE daemon; a stat can be answered from the kernel's attribute cache for
    a second after the last access, even when the daemon is dead.
    """
    return _in_thread(lambda: os.statvfs(path), timeout)[0]


def identity_of(settings):
    """(name, UUID) from the client's format settings (``Format`` of the mount's config file, or what
    ``juicefs config`` prints), or None when they do not have that shape."""
    if not isinstance(settings, dict):
        return None
    name, uuid = settings.get('Name'), settings.get('UUID')
    if isinstance(name, str) and isinstance(uuid, str) and _UUID_RE.match(uuid):
        return name, uuid.lower()
    return None


def mounted_identity(point, timeout=5.0):
    """(name, UUID) of the volume the client mounted at ``point``, read from its config file; None when it
    cannot be read in time or has no such fields. Nothing else of that file (it holds the object storage's
    settings) leaves this function."""
    def read():
        with open(os.path.join(point, CONFIG_FILE), 'rb') as handle:
            return handle.read(CONFIG_MAX_BYTES + 1)
    err, data = _in_thread(read, timeout)
    if err or data is None or len(data) > CONFIG_MAX_BYTES:
        return None
    try:
        settings = json.loads(data.decode('utf-8'))
    except (UnicodeDecodeError, ValueError):
        return None
    return identity_of(settings.get('Format') if isinstance(settings, dict) else None)


# A program the collection runs (the client's mount and warmup, umount) sees nothing of the module's environment but
# these variables: that environment may hold AIMODEL_META_URL with its password, REDIS_PASSWORD (which the client
# prefers to META_PASSWORD) or anything else of the controller or of an AWX job. HOME and TZ are the client's own
# defaults, the proxies its way to the object storage.
_CHILD_ENV_KEPT = ('HOME', 'TZ', 'http_proxy', 'https_proxy', 'no_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY')
SAFE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'


def child_env(secrets=None, environ=None):
    """The whole environment of a child process: PATH (the module's when all its directories are absolute, else
    SAFE_PATH), the C locale, the variables of _CHILD_ENV_KEPT that are set, and ``secrets`` (name -> value, such as
    META_PASSWORD)."""
    environ = os.environ if environ is None else environ
    path = environ.get('PATH', '')
    env = {
        'PATH': path if path and all(part.startswith('/') for part in path.split(os.pathsep)) else SAFE_PATH,
        'LANG': 'C',
        'LC_ALL': 'C',
    }
    for name in _CHILD_ENV_KEPT:
        if environ.get(name):
            env[name] = environ[name]
    env.update(secrets or {})
    return env


# The program that starts every child with exactly child_env: run_command gives a child the module's environment
# updated with its environ_update, so the names that child_env does not hold are unset through env(1) (names only
# reach its command line; values, the password's too, only the environment).
ENV_PROGRAM = 'env'


def _run(run_command, argv, secrets=None, timeout=120, stderr=True):
    """(exit status, output) of a program run by ``run_command`` (the module's AnsibleModule.run_command) with the
    environment child_env(secrets) and nothing else, killed after ``timeout`` seconds (exit status 124); every form of
    a secret is scrubbed from its output. The output is stdout then stderr; with ``stderr=False`` it is stdout alone,
    unless the program fails."""
    env = child_env(secrets)
    unset = []
    for name in sorted(os.environ):
        if name not in env:
            unset += ['-u', name]
    timers, timed_out = [], []

    def kill_after_timeout(proc):
        def kill():
            if proc.poll() is None:
                timed_out.append(True)
                proc.kill()
        timer = threading.Timer(timeout, kill)
        timer.daemon = True
        timer.start()
        timers.append(timer)

    try:
        rc, out, err = run_command([ENV_PROGRAM] + unset + list(argv), environ_update=env,
                                   expand_user_and_vars=False, before_communicate_callback=kill_after_timeout,
                                   encoding='utf-8', errors='replace', handle_exceptions=False)
    except OSError as exc:
        return 127, 'cannot run %s: %s' % (argv[0], exc)
    finally:
        for timer in timers:
            timer.cancel()
    if timed_out:
        return 124, 'timed out after %ss' % timeout
    output = out + err if stderr or rc != 0 else out
    forms = []
    for value in (secrets or {}).values():
        forms.extend(_spec.secret_forms(value))
    return rc, _scrub(output, forms)


def _scrub(text, secrets):
    """``text`` with each of ``secrets`` replaced by ****, longest first (one may hold another)."""
    for secret in sorted(set(s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, '****')
    return text


_DEFAULT_PORTS = {'redis': 6379, 'rediss': 6379, 'postgres': 5432, 'mysql': 3306}


def meta_endpoint(meta_url):
    """(host, port) of a network metadata engine with one address, or None (files, clusters, sockets)."""
    match = re.match(r'^([a-z0-9]+)://(?:[^@/]*@)?\(?([^/():,@]+)(?::(\d+))?\)?(?:/|$)', meta_url)
    if not match or match.group(1) not in _DEFAULT_PORTS:
        return None
    return match.group(2), int(match.group(3) or _DEFAULT_PORTS[match.group(1)])


def check_reachable(meta_url, timeout=5.0):
    """Fail fast with a clear error when the metadata engine does not accept connections (the client itself
    retries for more than a minute before it gives up)."""
    endpoint = meta_endpoint(meta_url)
    if endpoint is None:
        return
    try:
        socket.create_connection(endpoint, timeout=timeout).close()
    except (OSError, socket.timeout) as exc:
        raise VolumeError('volume.meta_url: the metadata engine at %s:%s does not accept connections (%s)'
                          % (endpoint[0], endpoint[1], exc))


class Host:
    """The one boundary between the collection and the host's side of the volumes: the host mount table, the
    JuiceFS client (mount, warmup) and the volume's directories. Unit tests replace it with a fake.

    ``run_command``: the module's AnsibleModule.run_command, which runs the programs (the client's config, mount and
    warmup, umount); a Host made without it only reads (the mount table, statfs, the volume's directories)."""

    def __init__(self, run_command=None):
        self._run_command = run_command

    def _run(self, argv, secrets=None, timeout=120, stderr=True):
        if self._run_command is None:
            raise VolumeError('running %s needs the module\'s run_command (this Host only reads)' % argv[0])
        return _run(self._run_command, argv, secrets, timeout, stderr)

    def find_client(self, explicit=None):
        if explicit:
            if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
                return explicit
            raise VolumeError('volume.client_path %s is not an executable file' % explicit)
        found = shutil.which(CLIENT_NAME) or shutil.which(CLIENT_NAME, path=os.pathsep.join(_SEARCH_DIRS))
        if not found:
            raise VolumeError('the model repository client (%s) is not installed on this host: install it '
                              '(role aimodel.kvm.juicefs_client) or set volume.client_path' % CLIENT_NAME)
        return found

    def mount_id(self, point, path=HOST_MOUNTINFO):
        """The kernel's ID of the (visible) mount at this point, or None: a remount gets a new ID."""
        entry = visible_at(host_mounts(path), point)
        return entry['id'] if entry else None

    def status(self, point, volume_name=None, timeout=STATFS_TIMEOUT):
        """``mounted`` (healthy), ``absent``, ``dead`` (listed, and its client gone or failing), ``slow``
        (listed, and statfs not answered within ``timeout``: busy or hung, which cannot be told apart, so
        never treated as dead) or ``foreign`` (something else is mounted there)."""
        entry = mount_table().get(point)
        if entry is None:
            return 'absent'
        fstype, source = entry
        if fstype != FSTYPE or (volume_name and source != 'JuiceFS:%s' % volume_name):
            return 'foreign'
        err = _statfs_with_timeout(point, timeout)
        if err == errno.ETIMEDOUT:
            return 'slow'
        return 'mounted' if err == 0 else 'dead'

    @staticmethod
    def mounted_identity(point):
        return mounted_identity(point)

    def engine_identity(self, client, meta_url, password, timeout=60):
        """(name, UUID) of the volume the metadata engine at ``meta_url`` holds, as the client reads it."""
        check_reachable(meta_url)
        env = {'META_PASSWORD': password} if password else {}
        rc, output = self._run([client, 'config', meta_url], env, timeout, stderr=False)
        found = None
        if rc == 0:
            try:
                found = identity_of(json.loads(output))
            except ValueError:
                found = None
        if found is None:
            raise VolumeError('volume.meta_url: cannot read the volume\'s identity from the metadata engine at %s '
                              '(exit %s): %s' % (meta_url, rc, _scrub(output.strip()[-500:], [password])))
        return found

    def describe(self, point):
        entry = mount_table().get(point)
        return '%s %s' % entry if entry else 'nothing'

    def mount(self, client, volume, meta_url, password, read_only, root=None, cache_dir=None, cache_size=None,
              log_dir=None, timeout=120):
        """Mount the volume at its host mount point (which must not be mounted yet)."""
        check_reachable(meta_url)
        point = mountpoint(volume, read_only, root)
        os.makedirs(point, mode=0o755, exist_ok=True)
        log_dir = log_dir or DEFAULT_LOG_DIR
        os.makedirs(log_dir, mode=0o700, exist_ok=True)
        argv = [client, 'mount', '--background', '--no-usage-report',
                '--log', log_path(volume, read_only, log_dir)]
        if read_only:
            argv.append('--read-only')
        if cache_dir:
            argv += ['--cache-dir', cache_dir]
        if cache_size is not None:
            argv += ['--cache-size', str(cache_size)]
        argv += [meta_url, point]
        rc, output = self._run(argv, {'META_PASSWORD': password} if password else None, timeout)
        if rc != 0:
            raise VolumeError('mounting volume %s at %s failed (exit %s): %s' % (volume, point, rc, output.strip()[-2000:]))
        state = self.status(point, volume)
        if state == 'foreign':
            raise VolumeError('the metadata URL of volume %s points to another volume: %s is mounted at %s; '
                              'volume.name must be the name the volume was formatted with'
                              % (volume, self.describe(point), point))
        if state != 'mounted':
            raise VolumeError('volume %s did not come up at %s (state: %s)' % (volume, point, state))

    def unmount(self, point):
        """Unmount the volume's mount point (not lazily: a busy mount stays, and says so)."""
        rc, output = self._run(['umount', point], timeout=60)
        if rc != 0:
            raise VolumeError('cannot unmount %s: %s' % (point, output.strip()[-500:]))

    def lazy_unmount(self, point):
        """Detach a dead mount point so it can be mounted again."""
        rc, output = self._run(['umount', '-l', point], timeout=30)
        if rc != 0:
            raise VolumeError('cannot clear the dead mount at %s: %s' % (point, output.strip()))

    def warmup(self, client, path, timeout=3600):
        rc, output = self._run([client, 'warmup', path], timeout=timeout)
        if rc != 0:
            raise VolumeError('warming up %s failed (exit %s): %s' % (path, rc, output.strip()[-2000:]))

    def check_source(self, point, source_path):
        """Whether the model's directory can be pinned now: True, None when it does not exist; raises
        VolumeError when it is refused (a symlink, not a directory, another mount on the way)."""
        try:
            fd = _export.open_beneath(point, source_path)
        except _export.PinError as exc:
            raise VolumeError(str(exc))
        if fd is None:
            return None
        os.close(fd)
        return True

    # --- the VM's export tree (see _export) ---------------------------------------------------------
    def pin(self, uuid, key, entry, point, source_path, read_only):
        try:
            _export.pin(uuid, key, entry, point, source_path, read_only)
        except _export.PinError as exc:
            raise VolumeError(str(exc))
        except OSError as exc:
            raise VolumeError('binding %s into the export tree of the VM failed: %s' % (source_path, exc))

    def unpin(self, uuid, key, entry):
        try:
            _export.unpin(uuid, key, entry)
        except OSError as exc:
            raise VolumeError('taking %s out of the export tree of the VM failed: %s' % (entry, exc))

    def remove_view(self, uuid, key):
        try:
            _export.remove_view(uuid, key)
        except OSError as exc:
            raise VolumeError('removing the export directory %s of the VM failed: %s'
                              % (_export.view_dir(uuid, key), exc))

    @staticmethod
    def entry_state(uuid, key, entry, point, source_path):
        return _export.entry_state(_export.host_mounts(), uuid, key, entry, point, source_path)

    @staticmethod
    def entry_id(uuid, key, entry):
        """``ID:DEV`` of the bind of this model in the export tree (a new bind, or one of a volume mounted
        again, gets another), or None."""
        found = visible_at(_export.host_mounts(), _export.entry_path(uuid, key, entry))
        return '%s:%s' % (found['id'], found['dev']) if found else None

    @staticmethod
    def bound_entries(uuid):
        return sorted(_export.bound_entries(_export.host_mounts(), uuid))
