# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The per-VM export tree on the host: what the VM's one virtiofs device per access mode serves.

    <root>/.stage/<vm-uuid>/<key>/<entry>   real directories (never served)
    <root>/<vm-uuid>/<key>                  the device's source: a read-only bind of the stage directory
    <root>/<vm-uuid>/<key>/<entry>          one model: a bind mount of its directory in the volume

``key`` is the access mode and cache mode (``ro``, ``rw``, ``ro-always``...), ``entry`` the model's tag. The
top of a served directory is a read-only mount, so a guest that mounts its device read-write can neither
write to the host's disk there nor plant a symlink where a model is bound later. A model's directory is
opened one component at a time without following symlinks and without leaving the volume's mount, and that
open directory is what is bound (``/proc/self/fd/N``): what is served is exactly what was checked, whatever
a volume writer swaps afterwards. Read-only models are bound read-only before the bind is attached to the
tree (the new mount API; a remount made later would not reach the virtiofsd that already serves the tree).

Standard library only: the libvirt hook of roles/hypervisor runs this file on a hypervisor before QEMU
starts, with no Ansible installed.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import ctypes
import ctypes.util
import errno
import os
import stat
import threading

from ansible_collections.aimodel.kvm.plugins.module_utils._mountinfo import parse_mountinfo, visible_at

DEFAULT_ROOT = '/var/lib/aimodel/exports'
# Where the guest mounts each device once; models are bind-mounted from <base>/<entry>.
GUEST_BASE = '/run/aimodel'
DEVICE_PREFIX = 'aimodel-'
HOST_MOUNTINFO = '/proc/self/mountinfo'

_MS_RDONLY = 1
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_REMOUNT = 32
_MS_BIND = 4096
_MS_PRIVATE = 1 << 18
_MS_SHARED = 1 << 20
_MNT_DETACH = 2
_UMOUNT_NOFOLLOW = 8
# The new mount API (Linux 5.2; mount_setattr 5.12). Same numbers on x86_64 and aarch64.
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_MOUNT_SETATTR = 442
_OPEN_TREE_CLONE = 1
_OPEN_TREE_CLOEXEC = 0o2000000
_AT_EMPTY_PATH = 0x1000
_AT_FDCWD = -100
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MOUNT_ATTR_RDONLY = 0x1
_MOUNT_ATTR_NOSUID = 0x2
_MOUNT_ATTR_NODEV = 0x4

_LIBC = None


class PinError(Exception):
    """A model directory that cannot be pinned (a symlink, not a directory, another mount), or a failed bind."""


def _libc():
    global _LIBC  # pylint: disable=global-statement
    if _LIBC is None:
        _LIBC = ctypes.CDLL(ctypes.util.find_library('c') or None, use_errno=True)
    return _LIBC


def _check(ret, what):
    if ret != 0:
        code = ctypes.get_errno()
        raise OSError(code, '%s: %s' % (what, os.strerror(code)))


# --- names ----------------------------------------------------------------------------------------

def device_key(read_only, cache='auto'):
    key = 'ro' if read_only else 'rw'
    return key if cache in (None, 'auto') else '%s-%s' % (key, cache)


def device_tag(key):
    return DEVICE_PREFIX + key


def key_of_tag(tag):
    """The key of one of our shared devices' tags, or None."""
    if not isinstance(tag, str) or not tag.startswith(DEVICE_PREFIX):
        return None
    key = tag[len(DEVICE_PREFIX):]
    return key if key.split('-', 1)[0] in ('ro', 'rw') else None


def guest_base(key):
    return '%s/%s' % (GUEST_BASE, key)


def view_dir(uuid, key, root=None):
    return os.path.join(root or DEFAULT_ROOT, uuid, key)


def stage_dir(uuid, key, root=None):
    return os.path.join(root or DEFAULT_ROOT, '.stage', uuid, key)


def entry_path(uuid, key, entry, root=None):
    return os.path.join(view_dir(uuid, key, root), entry)


# --- the host's mount table -------------------------------------------------------------------------

def host_mounts(path=HOST_MOUNTINFO):
    with open(path) as handle:
        return parse_mountinfo(handle.read())


def statfs_ok(path, timeout=5.0):
    """Whether statfs answers in time (it always reaches a FUSE daemon; a hung one must not hang us)."""
    outcome = []

    def probe():
        try:
            os.statvfs(path)
            outcome.append(True)
        except OSError:
            outcome.append(False)

    worker = threading.Thread(target=probe)
    worker.daemon = True
    worker.start()
    worker.join(timeout)
    return bool(outcome and outcome[0])


def entry_state(mounts, uuid, key, entry, volume_point, source_path, root=None, timeout=5.0):
    """``pinned`` (the entry is a bind of exactly the directory that ``source_path`` names in the mounted volume
    now, and answers), ``missing`` (nothing bound), ``stale`` (a bind of something else: another mount of the
    volume, or a directory that was renamed, replaced or swapped for a symlink since), ``dead`` (bound, but its
    volume's client does not answer).

    The directory is walked again (see ``open_beneath``) and compared by inode: the mount table's path of a bind
    is not enough, since a rename made through another client of the volume does not reach this host's cache."""
    target = entry_path(uuid, key, entry, root)
    here = visible_at(mounts, target)
    if here is None:
        return 'missing'
    volume = visible_at(mounts, volume_point)
    if volume is None or here['dev'] != volume['dev']:
        return 'stale'
    if not statfs_ok(target, timeout):
        return 'dead'
    try:
        fd = open_beneath(volume_point, source_path)
    except (PinError, OSError):
        return 'stale'
    if fd is None:
        return 'stale'
    try:
        now, bound = os.fstat(fd), os.stat(target)
    except OSError:
        return 'stale'
    finally:
        os.close(fd)
    return 'pinned' if (now.st_dev, now.st_ino) == (bound.st_dev, bound.st_ino) else 'stale'


def view_protected(mounts, uuid, key, root=None):
    """Whether the top of the served directory is the read-only mount it must be."""
    here = visible_at(mounts, view_dir(uuid, key, root))
    return here is not None and 'ro' in here['options']


def bound_entries(mounts, uuid, root=None):
    """{(key, entry): mount} of what is bound into this VM's export tree now."""
    base = os.path.join(root or DEFAULT_ROOT, uuid) + '/'
    found = {}
    for entry in mounts:
        rest = entry['target'][len(base):] if entry['target'].startswith(base) else None
        if rest and rest.count('/') == 1:
            found[tuple(rest.split('/'))] = entry
    return found


# --- pinning ---------------------------------------------------------------------------------------

def open_beneath(point, relpath):
    """An O_PATH descriptor of the directory ``relpath`` below ``point``, reached one component at a time
    without following a symlink and without crossing into another mount; None when a component does not
    exist. Raises PinError for a symlink, a non-directory or another mount on the way."""
    parts = [p for p in relpath.split('/') if p]
    if not parts or any(p in ('.', '..') for p in parts):
        raise PinError('source_path %s must name a directory below the volume root' % relpath)
    flags = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)
    fd = os.open(point, os.O_PATH | os.O_DIRECTORY | getattr(os, 'O_CLOEXEC', 0))
    try:
        device = os.fstat(fd).st_dev
        walked = []
        for part in parts:
            walked.append(part)
            try:
                nxt = os.open(part, flags, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    return None
                if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                    try:
                        mode = os.lstat(part, dir_fd=fd).st_mode
                    except OSError:
                        mode = 0
                    what = 'a symbolic link' if stat.S_ISLNK(mode) else 'not a directory'
                    raise PinError('source_path %s: %s is %s (symbolic links in a volume are never followed)'
                                   % (relpath, '/'.join(walked), what))
                raise PinError('source_path %s: cannot open %s: %s' % (relpath, '/'.join(walked), exc.strerror))
            os.close(fd)
            fd = nxt
            if os.fstat(fd).st_dev != device:
                raise PinError('source_path %s: %s is another mount, not the volume' % (relpath, '/'.join(walked)))
        result, fd = fd, None
        return result
    finally:
        if fd is not None:
            os.close(fd)


def _bind_new_api(fd, target, read_only):
    libc = _libc()
    tree = libc.syscall(_SYS_OPEN_TREE, fd, b'', _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC | _AT_EMPTY_PATH)
    if tree < 0:
        return ctypes.get_errno()
    try:
        attrs = _MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NODEV | (_MOUNT_ATTR_RDONLY if read_only else 0)
        how = (ctypes.c_uint64 * 4)(attrs, 0, 0, 0)   # struct mount_attr: attr_set, attr_clr, propagation, userns
        if libc.syscall(_SYS_MOUNT_SETATTR, tree, b'', _AT_EMPTY_PATH, ctypes.byref(how), ctypes.sizeof(how)) != 0:
            return ctypes.get_errno()
        _check(libc.syscall(_SYS_MOVE_MOUNT, tree, b'', _AT_FDCWD, target.encode(), _MOVE_MOUNT_F_EMPTY_PATH),
               'attaching the bind at %s' % target)
        return 0
    finally:
        os.close(tree)


def bind(fd, target, read_only):
    """Bind the open directory ``fd`` at ``target``: read-only (and nosuid, nodev) before it is attached
    where the kernel has the new mount API; else a plain bind (the read-only volume mount still refuses
    writes)."""
    code = _bind_new_api(fd, target, read_only)
    if code in (0,):
        return
    if code not in (errno.ENOSYS, errno.EINVAL, errno.EPERM):
        raise OSError(code, 'binding at %s: %s' % (target, os.strerror(code)))
    _check(_libc().mount(('/proc/self/fd/%d' % fd).encode(), target.encode(), None, _MS_BIND, None),
           'binding at %s' % target)


def unbind(target):
    """Detach what is mounted at ``target`` (lazily: virtiofsd may still hold it); nothing there is fine."""
    for _attempt in range(8):
        if _libc().umount2(target.encode(), _MNT_DETACH | _UMOUNT_NOFOLLOW) != 0:
            code = ctypes.get_errno()
            if code in (errno.EINVAL, errno.ENOENT):
                return
            raise OSError(code, 'unmounting %s: %s' % (target, os.strerror(code)))


def _ensure_shared_root(root, mounts):
    """Binds made under the root after a virtiofsd started must reach its mount namespace (a slave of the
    host's): the root must be on a shared mount. Systemd makes / shared; elsewhere the root is bound on
    itself and made shared."""
    os.makedirs(root, mode=0o755, exist_ok=True)
    best = None
    for entry in mounts:
        target = entry['target'].rstrip('/') or '/'
        if root == target or root.startswith(target.rstrip('/') + '/'):
            if best is None or len(target) >= len(best['target'].rstrip('/') or '/'):
                best = entry
    if best is not None and any(p.startswith('shared:') for p in best.get('propagation', [])):
        return
    libc = _libc()
    if best is None or (best['target'].rstrip('/') or '/') != root:
        _check(libc.mount(root.encode(), root.encode(), None, _MS_BIND, None), 'binding %s on itself' % root)
    _check(libc.mount(b'none', root.encode(), None, _MS_SHARED, None), 'making %s shared' % root)


def prepare_view(uuid, key, root=None, mounts=None):
    """The served directory of one device, as a read-only mount over the stage directory (made read-only
    before any virtiofsd can see it)."""
    root = root or DEFAULT_ROOT
    mounts = host_mounts() if mounts is None else mounts
    _ensure_shared_root(root, mounts)
    stage, view = stage_dir(uuid, key, root), view_dir(uuid, key, root)
    os.makedirs(stage, mode=0o755, exist_ok=True)
    os.makedirs(view, mode=0o755, exist_ok=True)
    if view_protected(mounts, uuid, key, root):
        return
    if visible_at(mounts, view) is not None:
        unbind(view)
    libc = _libc()
    _check(libc.mount(stage.encode(), view.encode(), None, _MS_BIND, None), 'binding %s' % view)
    _check(libc.mount(b'none', view.encode(), None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV,
                      None), 'making %s read-only' % view)
    # A peer group of its own: binds of models reach the virtiofsd of the device (a slave of it), not the
    # stage directory or the rest of the host.
    _check(libc.mount(b'none', view.encode(), None, _MS_PRIVATE, None), 'making %s private' % view)
    _check(libc.mount(b'none', view.encode(), None, _MS_SHARED, None), 'making %s shared' % view)


def pin(uuid, key, entry, point, source_path, read_only, root=None):
    """Bind the model's directory into the VM's export tree (replacing what was bound there). Raises
    PinError (the directory is refused or missing) or OSError."""
    root = root or DEFAULT_ROOT
    mounts = host_mounts()
    prepare_view(uuid, key, root, mounts)
    fd = open_beneath(point, source_path)
    if fd is None:
        raise PinError('source_path %s does not exist in the volume mounted at %s' % (source_path, point))
    try:
        target = entry_path(uuid, key, entry, root)
        if visible_at(mounts, target) is not None:
            unbind(target)
        os.makedirs(os.path.join(stage_dir(uuid, key, root), entry), mode=0o755, exist_ok=True)
        bind(fd, target, read_only)
    finally:
        os.close(fd)


def unpin(uuid, key, entry, root=None):
    """Take a model out of the VM's export tree."""
    root = root or DEFAULT_ROOT
    unbind(entry_path(uuid, key, entry, root))
    for path in (os.path.join(stage_dir(uuid, key, root), entry),):
        try:
            os.rmdir(path)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EBUSY):
                raise


def remove_view(uuid, key, root=None):
    """Take the served directory of a device away (its last model is gone and the device detached)."""
    root = root or DEFAULT_ROOT
    unbind(view_dir(uuid, key, root))
    for path in (view_dir(uuid, key, root), stage_dir(uuid, key, root),
                 os.path.join(root, uuid), os.path.join(root, '.stage', uuid)):
        try:
            os.rmdir(path)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EBUSY):
                raise


def release(uuid, root=None):
    """Unbind everything of a VM that stopped (its views stay as directories, so it can start again)."""
    root = root or DEFAULT_ROOT
    mounts = host_mounts()
    for (key, entry) in sorted(bound_entries(mounts, uuid, root)):
        unbind(entry_path(uuid, key, entry, root))
