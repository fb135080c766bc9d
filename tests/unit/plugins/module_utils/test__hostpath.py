# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A host path is the module's own only when nobody else can change what it names, on the whole way to it."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import pytest

from ansible_collections.aimodel.kvm.plugins.module_utils import _hostpath
from ansible_collections.aimodel.kvm.plugins.module_utils._spec import SpecError
from ansible_collections.aimodel.kvm.tests.unit.plugins.fakes import FakeTree


def tree():
    return (FakeTree().add('/usr').add('/usr/local').add('/usr/local/bin')
            .add('/usr/local/bin/juicefs', 'file', mode=0o755)
            .add('/var').add('/var/lib').add('/var/lib/aimodel')
            .add('/tmp', mode=0o1777).add('/var/tmp', mode=0o1777))


def check(fake, path, field='volume.client_path', uid=0):
    _hostpath.check_trusted(field, path, lstat=fake.lstat, readlink=fake.readlink, uid=uid)


def refused(fake, path, field='volume.client_path', uid=0):
    with pytest.raises(SpecError) as err:
        check(fake, path, field, uid)
    assert err.value.field == field and str(err.value).startswith(field + ': ')
    return str(err.value)


@pytest.mark.parametrize('path', [
    '/usr/local/bin/juicefs',                   # an existing root file in root directories
    '/var/lib/aimodel/volumes',                 # the rest does not exist yet: the module makes it
    '/var/lib/aimodel/volumes/a/b/c',
    '/var/lib/aimodel',
])
def test_root_owned_paths_pass(path):
    check(tree(), path)


def test_a_file_writable_by_others_is_refused():
    msg = refused(tree().add('/usr/local/bin/juicefs', 'file', mode=0o757), '/usr/local/bin/juicefs')
    assert 'writable by others (mode 0757)' in msg


def test_a_file_writable_by_its_group_is_refused():
    msg = refused(tree().add('/usr/local/bin/juicefs', 'file', mode=0o775), '/usr/local/bin/juicefs')
    assert 'writable by its group' in msg


def test_a_file_of_another_user_is_refused():
    msg = refused(tree().add('/usr/local/bin/juicefs', 'file', uid=1000), '/usr/local/bin/juicefs')
    assert 'owned by uid 1000' in msg


def test_a_file_of_the_modules_own_user_passes():
    check(tree().add('/usr/local/bin/juicefs', 'file', uid=1000), '/usr/local/bin/juicefs', uid=1000)


def test_a_world_writable_directory_on_the_way_is_refused():
    fake = tree().add('/opt', mode=0o777).add('/opt/jfs').add('/opt/jfs/juicefs', 'file')
    msg = refused(fake, '/opt/jfs/juicefs')
    assert '/opt (on the way to /opt/jfs/juicefs) is writable by others (mode 0777)' in msg


@pytest.mark.parametrize('path', ['/tmp', '/tmp/mr', '/tmp/mr/x', '/var/tmp/cache'])
def test_a_sticky_world_writable_directory_is_refused_as_the_path_or_to_create_in(path):
    # Another user could create the missing entry first (a symbolic link to where they like).
    msg = refused(tree(), path, 'volume.mount_root')
    assert 'mode 1777' in msg


def test_a_root_entry_that_exists_in_a_sticky_directory_passes():
    # The sticky bit keeps others from renaming or removing it.
    fake = tree().add('/tmp/jfs').add('/tmp/jfs/juicefs', 'file')
    check(fake, '/tmp/jfs/juicefs')
    check(fake, '/tmp/jfs/volumes')


@pytest.mark.parametrize('entry', [dict(uid=1000), dict(mode=0o777)])
def test_an_entry_of_another_user_or_writable_in_a_sticky_directory_is_refused(entry):
    fake = tree().add('/tmp/jfs', **entry).add('/tmp/jfs/juicefs', 'file')
    assert '/tmp/jfs (on the way to /tmp/jfs/juicefs)' in refused(fake, '/tmp/jfs/juicefs')


def test_a_sticky_directory_of_another_user_is_refused():
    fake = tree().add('/srv', mode=0o1777, uid=1000).add('/srv/jfs')
    assert '/srv (on the way to /srv/jfs/juicefs) is owned by uid 1000' in refused(fake, '/srv/jfs/juicefs')


def test_a_directory_of_another_user_on_the_way_is_refused():
    fake = tree().add('/srv', uid=1000).add('/srv/cache')
    assert '/srv (on the way to /srv/cache) is owned by uid 1000' in refused(fake, '/srv/cache', 'volume.cache_dir')


def test_a_group_writable_root_directory_is_refused():
    fake = tree().add('/srv', mode=0o775)
    assert 'writable by its group' in refused(fake, '/srv/volumes', 'volume.mount_root')


def test_the_root_directory_itself_is_checked():
    fake = tree().add('/', mode=0o777)
    assert '/ (on the way to /var/lib/aimodel)' in refused(fake, '/var/lib/aimodel', 'volume.mount_root')


def test_a_link_is_followed_and_its_target_checked():
    fake = tree().add('/opt').add('/opt/jfs', 'link', target='/tmp/evil').add('/tmp/evil', uid=1000).add(
        '/tmp/evil/juicefs', 'file')
    assert '/tmp/evil (on the way to /opt/jfs/juicefs) is owned by uid 1000' in refused(fake, '/opt/jfs/juicefs')


def test_a_relative_link_is_resolved_from_its_directory():
    fake = tree().add('/opt').add('/opt/bin', 'link', target='../usr/local/bin')
    check(fake, '/opt/bin/juicefs')
    fake.add('/usr/local/bin', mode=0o777)
    assert '/usr/local/bin (on the way to /opt/bin/juicefs)' in refused(fake, '/opt/bin/juicefs')


def test_a_link_as_the_last_component_is_checked_through():
    fake = tree().add('/usr/local/bin/juicefs', 'link', target='/var/tmp/venv/bin/juicefs').add(
        '/var/tmp/venv').add('/var/tmp/venv/bin').add('/var/tmp/venv/bin/juicefs', 'file')
    check(fake, '/usr/local/bin/juicefs')
    fake.add('/var/tmp/venv', uid=1000)
    assert '/var/tmp/venv (on the way to /usr/local/bin/juicefs)' in refused(fake, '/usr/local/bin/juicefs')
    fake2 = tree().add('/usr/local/bin/juicefs', 'link', target='/opt/juicefs').add('/opt').add(
        '/opt/juicefs', 'file', mode=0o777)
    assert '/opt/juicefs (on the way to /usr/local/bin/juicefs) is writable by others' in refused(
        fake2, '/usr/local/bin/juicefs')


def test_a_dangling_link_into_a_trusted_directory_passes():
    fake = tree().add('/var/lib/aimodel/volumes', 'link', target='/var/lib/vols')
    check(fake, '/var/lib/aimodel/volumes', 'volume.mount_root')


def test_a_link_loop_is_refused():
    fake = tree().add('/opt').add('/opt/a', 'link', target='/opt/b').add('/opt/b', 'link', target='/opt/a')
    assert 'symbolic links' in refused(fake, '/opt/a/x')


def test_a_file_on_the_way_is_refused():
    fake = tree().add('/opt', 'file')
    assert 'not a directory' in refused(fake, '/opt/x/y', 'volume.cache_dir')


def test_check_volume_checks_each_set_path_naming_its_option(monkeypatch):
    fake = tree().add('/srv', mode=0o777)
    monkeypatch.setattr(_hostpath, 'LSTAT', fake.lstat)
    monkeypatch.setattr(_hostpath, 'READLINK', fake.readlink)
    _hostpath.check_volume({'mount_root': '/var/lib/aimodel/volumes', 'cache_dir': None,
                            'client_path': '/usr/local/bin/juicefs'})
    for key in ('mount_root', 'cache_dir', 'client_path'):
        with pytest.raises(SpecError) as err:
            _hostpath.check_volume(dict({'mount_root': None, 'cache_dir': None, 'client_path': None}, **{key: '/srv/x'}))
        assert err.value.field == 'volume.' + key


def test_the_real_host_paths_of_a_root_directory(tmp_path):
    """On the real file system: a directory made 0777 is refused (whatever its parents), the check reads lstat."""
    open_dir = tmp_path / 'open'
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with pytest.raises(SpecError) as err:
        _hostpath.check_trusted('volume.client_path', str(open_dir / 'juicefs'))
    assert 'writable by others' in str(err.value)
