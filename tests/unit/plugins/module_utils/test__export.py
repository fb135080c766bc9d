# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The per-VM export tree: names, what the host's mount table says about it, and the walk to a model's directory
(``open_beneath``) on a real directory tree. The bind and mount calls themselves are left to the integration
tests."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import os

import pytest

from ansible_collections.aimodel.kvm.plugins.module_utils import _export
from ansible_collections.aimodel.kvm.plugins.module_utils._mountinfo import parse_mountinfo

UUID = '11111111-2222-3333-4444-555555555555'
EXPORTS = '/var/lib/aimodel/exports'


# --- names ----------------------------------------------------------------------------------------

@pytest.mark.parametrize('read_only, cache, key', [
    (True, 'auto', 'ro'), (False, 'auto', 'rw'), (True, None, 'ro'),
    (True, 'always', 'ro-always'), (False, 'never', 'rw-never'),
])
def test_device_key(read_only, cache, key):
    assert _export.device_key(read_only, cache) == key
    assert _export.key_of_tag(_export.device_tag(key)) == key


def test_device_key_defaults_to_auto():
    assert _export.device_key(True) == 'ro' and _export.device_key(False) == 'rw'


def test_device_tag_and_back():
    assert _export.device_tag('ro') == 'aimodel-ro'
    assert _export.device_tag('rw-always') == 'aimodel-rw-always'
    assert _export.key_of_tag('aimodel-ro') == 'ro'
    assert _export.key_of_tag('aimodel-rw-never') == 'rw-never'


@pytest.mark.parametrize('tag', ['aim-m1-ca0df2c9', 'aimodel-', 'aimodel-xx', 'aimodel-rox', 'other-ro', 'ro', '', None, 7])
def test_key_of_a_tag_that_is_not_of_a_shared_device(tag):
    assert _export.key_of_tag(tag) is None


def test_paths_of_the_export_tree():
    assert _export.guest_base('ro') == '/run/aimodel/ro'
    assert _export.guest_base('rw-always') == '/run/aimodel/rw-always'
    assert _export.view_dir(UUID, 'ro') == '%s/%s/ro' % (EXPORTS, UUID)
    assert _export.stage_dir(UUID, 'ro') == '%s/.stage/%s/ro' % (EXPORTS, UUID)
    assert _export.entry_path(UUID, 'ro', 'aim-m1-ca0df2c9') == '%s/%s/ro/aim-m1-ca0df2c9' % (EXPORTS, UUID)
    assert _export.entry_path(UUID, 'rw', 'aim-a-1', root='/srv/x') == '/srv/x/%s/rw/aim-a-1' % UUID
    assert _export.view_dir(UUID, 'ro', root='/srv/x') == '/srv/x/%s/ro' % UUID


# --- the host's mount table ------------------------------------------------------------------------

def mountinfo(*lines):
    """parse_mountinfo of lines ``ID DEV ROOT TARGET OPTIONS FSTYPE SOURCE``."""
    text = ''
    for line in lines:
        mount_id, dev, root, target, options, fstype, source = line.split()
        text += '%s 1 %s %s %s %s shared:1 - %s %s rw\n' % (mount_id, dev, root, target, options, fstype, source)
    return parse_mountinfo(text)


VOLUME = '/var/lib/aimodel/volumes/v/ro'
VIEW = '%s/%s/ro' % (EXPORTS, UUID)
HOST = mountinfo(
    '20 0:40 / %s ro,nosuid,nodev fuse.juicefs JuiceFS:v' % VOLUME,
    '30 252:1 /var/lib/aimodel/exports/.stage/%s/ro %s ro,nosuid,nodev ext4 /dev/vda1' % (UUID, VIEW),
    '31 0:40 /models/a %s/aim-a-1 ro,nosuid,nodev fuse.juicefs JuiceFS:v' % VIEW,
    '32 0:40 /models/b %s/aim-b-2 ro,nosuid,nodev fuse.juicefs JuiceFS:v' % VIEW,
    '33 0:40 /models/c %s/%s/rw/aim-c-3 rw,nosuid,nodev fuse.juicefs JuiceFS:v' % (EXPORTS, UUID),
    '34 0:40 /models/a/sub %s/aim-a-1/sub ro fuse.juicefs JuiceFS:v' % VIEW,
    '35 0:40 /models/d %s/99999999-2222-3333-4444-555555555555/ro/aim-d-4 ro fuse.juicefs JuiceFS:v' % EXPORTS,
    '36 0:41 / %s/.stage/%s/ro/aim-x-5 rw tmpfs tmpfs' % (EXPORTS, UUID),
)


def test_bound_entries_are_the_binds_one_level_below_a_view():
    found = _export.bound_entries(HOST, UUID)
    assert sorted(found) == [('ro', 'aim-a-1'), ('ro', 'aim-b-2'), ('rw', 'aim-c-3')]
    assert found[('ro', 'aim-b-2')]['root'] == '/models/b'
    assert _export.bound_entries(HOST, UUID, root='/srv/elsewhere') == {}
    assert _export.bound_entries([], UUID) == {}


def test_view_protected():
    assert _export.view_protected(HOST, UUID, 'ro')
    assert not _export.view_protected(HOST, UUID, 'rw'), 'no mount at the view'
    writable = HOST + mountinfo('40 252:1 /x %s rw ext4 /dev/vda1' % VIEW)
    assert not _export.view_protected(writable, UUID, 'ro'), 'the visible mount at the view is writable'


@pytest.fixture
def tree(tmp_path):
    """A volume (a plain directory tree) whose entry ``aim-a-1`` of the VM's view is the model's directory itself:
    ``<root>/<uuid>/ro`` stands for the volume, so the entry and the walk to ``source_path`` reach one inode."""
    root = tmp_path / 'exports'
    volume = root / UUID / 'ro'
    (volume / 'aim-a-1').mkdir(parents=True)
    (volume / 'other').mkdir()
    (volume / 'link').symlink_to('aim-a-1')
    return str(root), str(volume)


def tree_mounts(root, volume, entry_dev='0:40', volume_line=True):
    lines = ['31 %s /models/a %s/aim-a-1 ro fuse.juicefs JuiceFS:v' % (entry_dev, volume)]
    if volume_line:
        lines.insert(0, '20 0:40 / %s ro fuse.juicefs JuiceFS:v' % volume)
    return mountinfo(*lines)


def test_entry_state_pinned(tree):
    root, volume = tree
    assert _export.entry_state(tree_mounts(root, volume), UUID, 'ro', 'aim-a-1', volume, 'aim-a-1', root=root) == 'pinned'


def test_entry_state_missing(tree):
    root, volume = tree
    mounts = [m for m in tree_mounts(root, volume) if not m['target'].endswith('aim-a-1')]
    assert _export.entry_state(mounts, UUID, 'ro', 'aim-a-1', volume, 'aim-a-1', root=root) == 'missing'


@pytest.mark.parametrize('why', ['another file system', 'the volume is not mounted', 'another directory',
                                 'the directory is gone', 'a symlink now'])
def test_entry_state_stale(tree, why):
    root, volume = tree
    mounts, source = tree_mounts(root, volume), 'aim-a-1'
    if why == 'another file system':
        mounts = tree_mounts(root, volume, entry_dev='0:99')
    elif why == 'the volume is not mounted':
        mounts = tree_mounts(root, volume, volume_line=False)
    elif why == 'another directory':
        source = 'other'
    elif why == 'the directory is gone':
        source = 'nope'
    else:
        source = 'link'
    assert _export.entry_state(mounts, UUID, 'ro', 'aim-a-1', volume, source, root=root) == 'stale'


def test_entry_state_stale_after_a_rename(tree):
    # The directory that was pinned is renamed, another one takes its name: the entry is not what source_path
    # names now.
    root, volume = tree
    os.rename(os.path.join(volume, 'aim-a-1'), os.path.join(volume, 'moved'))
    os.mkdir(os.path.join(volume, 'aim-a-1'))
    assert _export.entry_state(tree_mounts(root, volume), UUID, 'ro', 'aim-a-1', volume, 'moved', root=root) == 'stale'


def test_entry_state_dead(tree, monkeypatch):
    root, volume = tree
    monkeypatch.setattr(_export, 'statfs_ok', lambda path, timeout=5.0: False)
    assert _export.entry_state(tree_mounts(root, volume), UUID, 'ro', 'aim-a-1', volume, 'aim-a-1', root=root) == 'dead'


def test_statfs_ok(tmp_path):
    assert _export.statfs_ok(str(tmp_path))
    assert not _export.statfs_ok(str(tmp_path / 'nope'))


# --- open_beneath on a real directory tree -----------------------------------------------------------

@pytest.fixture
def volume(tmp_path):
    """A volume: models/m1 (a directory with a file), models/file, a symlink as a last component, symlinks in the
    middle pointing inside and outside the tree."""
    point = tmp_path / 'volume'
    (point / 'models' / 'm1').mkdir(parents=True)
    (point / 'models' / 'm1' / 'config.json').write_text('{}')
    (point / 'models' / 'file').write_text('x')
    (tmp_path / 'outside' / 'm1').mkdir(parents=True)
    (point / 'models' / 'last').symlink_to('m1')
    (point / 'inside').symlink_to('models')
    (point / 'outside').symlink_to(str(tmp_path / 'outside'))
    return str(point)


def opened(point, relpath):
    fd = _export.open_beneath(point, relpath)
    assert fd is not None
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


@pytest.mark.parametrize('relpath', ['models/m1', '/models/m1', 'models//m1/', 'models'])
def test_open_beneath_a_plain_path_is_exactly_that_directory(volume, relpath):
    found = opened(volume, relpath)
    wanted = os.stat(os.path.join(volume, relpath.strip('/')))
    assert (found.st_dev, found.st_ino) == (wanted.st_dev, wanted.st_ino)


@pytest.mark.parametrize('relpath, component, what', [
    ('models/last', 'models/last', 'a symbolic link'),
    ('inside/m1', 'inside', 'a symbolic link'),
    ('outside/m1', 'outside', 'a symbolic link'),
    ('models/file', 'models/file', 'not a directory'),
    ('models/file/x', 'models/file', 'not a directory'),
])
def test_open_beneath_refuses_symlinks_and_files_naming_the_component(volume, relpath, component, what):
    with pytest.raises(_export.PinError) as err:
        _export.open_beneath(volume, relpath)
    assert str(err.value).startswith('source_path %s: %s is %s' % (relpath, component, what)), str(err.value)


@pytest.mark.parametrize('relpath', ['models/../models/m1', '../volume/models/m1', 'models/./m1', '.', '..', '', '/', '//'])
def test_open_beneath_refuses_dot_components_and_an_empty_path(volume, relpath):
    with pytest.raises(_export.PinError) as err:
        _export.open_beneath(volume, relpath)
    assert 'source_path %s must name a directory below the volume root' % relpath in str(err.value)


@pytest.mark.parametrize('relpath', ['nope', 'models/nope', 'models/m1/nope', 'nope/deeper'])
def test_open_beneath_a_missing_component_is_none(volume, relpath):
    assert _export.open_beneath(volume, relpath) is None


def test_open_beneath_refuses_another_mount(tmp_path):
    # / and /proc are different file systems on every Linux host.
    if os.stat('/').st_dev == os.stat('/proc').st_dev:
        pytest.skip('/proc is not a file system of its own here')
    with pytest.raises(_export.PinError) as err:
        _export.open_beneath('/', 'proc')
    assert 'source_path proc: proc is another mount, not the volume' in str(err.value)


def test_a_swap_after_the_open_does_not_change_what_the_descriptor_is(volume, tmp_path):
    path = os.path.join(volume, 'models', 'm1')
    wanted = os.stat(path)
    fd = _export.open_beneath(volume, 'models/m1')
    try:
        # A volume writer swaps the checked directory for a symlink out of the volume.
        os.rename(path, path + '.old')
        os.symlink(str(tmp_path / 'outside' / 'm1'), path)
        now = os.fstat(fd)
        assert (now.st_dev, now.st_ino) == (wanted.st_dev, wanted.st_ino)
        assert now.st_ino != os.stat(path).st_ino
        assert os.readlink('/proc/self/fd/%d' % fd) == path + '.old'
    finally:
        os.close(fd)
    with pytest.raises(_export.PinError):
        _export.open_beneath(volume, 'models/m1')


def test_open_beneath_leaves_no_descriptor_open(volume):
    before = set(os.listdir('/proc/self/fd'))
    for relpath in ('models/nope', 'models/m1/nope'):
        _export.open_beneath(volume, relpath)
    for relpath in ('models/last', 'models/file', 'inside/m1'):
        with pytest.raises(_export.PinError):
            _export.open_beneath(volume, relpath)
    assert set(os.listdir('/proc/self/fd')) == before
