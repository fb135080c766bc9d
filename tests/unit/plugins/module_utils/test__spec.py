# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import pytest

from ansible_collections.aimodel.kvm.plugins.module_utils import _spec


@pytest.mark.parametrize('raw, normalized', [
    ('/mnt/models/a', '/mnt/models/a'),
    ('/mnt/models/./a', '/mnt/models/a'),
    ('/mnt/models//a/', '/mnt/models/a'),
    ('//mnt/models/a', '/mnt/models/a'),
    ('/srv/models/a.b_c-d', '/srv/models/a.b_c-d'),
    ('/mnt/x', '/mnt/x'),
    ('/etc/models', '/etc/models'),
])
def test_mount_path_normalized(raw, normalized):
    assert _spec.normalize_mount_path(raw) == normalized


@pytest.mark.parametrize('raw, fragment', [
    ('', 'must not be empty'),
    ('mnt/a', 'absolute'),
    ('./a', 'absolute'),
    ('/mnt/../etc', '".."'),
    ('/mnt/a/..', '".."'),
    ('/mnt/a\x00b', 'control'),
    ('/mnt/a\nb', 'control'),
    ('/mnt/a\tb', 'control'),
    ('/mnt/a b', 'white space'),
    ('/mnt/a\\b', 'backslash'),
    ('/', 'system directory /'),
    ('//', 'system directory /'),
    ('/etc/', 'system directory /etc'),
    ('/usr', 'system directory'),
    ('/lib64', 'system directory'),
    ('/lib', 'system directory'),
    ('/var/.', 'system directory /var'),
    ('/tmp', 'system directory'),
    ('/root', 'system directory'),
    ('/proc/x', 'below /proc'),
    ('/sys/fs/x', 'below /sys'),
    ('/dev/shm/x', 'below /dev'),
    ('/' + 'a' * 300, 'longer than 255'),
    ('/a' * 600, 'at most 1024'),
])
def test_mount_path_refused(raw, fragment):
    with pytest.raises(_spec.SpecError) as err:
        _spec.normalize_mount_path(raw)
    assert err.value.field == 'mount_path'
    assert fragment in str(err.value)


def test_mount_path_type():
    with pytest.raises(_spec.SpecError, match='must be a string'):
        _spec.normalize_mount_path(5)


@pytest.mark.parametrize('raw, normalized', [
    ('models/x', 'models/x'), ('/models/x', 'models/x'), ('models//x/', 'models/x'), ('./models/x', 'models/x'),
])
def test_source_path(raw, normalized):
    assert _spec.normalize_source_path(raw) == normalized


@pytest.mark.parametrize('raw', ['', '/', '.', '../x', 'models/../../x', '.config', '/.trash/x', 'a\nb'])
def test_source_path_refused(raw):
    with pytest.raises(_spec.SpecError) as err:
        _spec.normalize_source_path(raw)
    assert err.value.field == 'source_path'


@pytest.mark.parametrize('name', ['a', 'all-minilm-l6-v2', 'Llama_3.1-8B', 'x' * 128])
def test_model_ok(name):
    assert _spec.validate_model(name) == name


@pytest.mark.parametrize('name', ['', 'a/b', 'x;reboot', 'a b', '-x', '.x', 'x.', 'x' * 129, 'mo\u0434el', '$(id)', 'a`b`'])
def test_model_refused(name):
    with pytest.raises(_spec.SpecError) as err:
        _spec.validate_model(name)
    assert err.value.field == 'model'


def test_tag_is_short_deterministic_and_unique():
    names = ['m', 'all-minilm-l6-v2', 'x' * 128, 'x' * 127 + 'y', 'A.b_c', 'a.b_c']
    tags = [_spec.derive_tag(n) for n in names]
    assert len(set(tags)) == len(names)
    for name, tag in zip(names, tags):
        assert tag == _spec.derive_tag(name)
        assert tag.startswith('aim-')
        assert len(tag.encode()) <= 64 and len(tag.rsplit('-', 1)[1]) == 16
        assert _spec.is_our_tag(tag)
    assert _spec.derive_tag('all-minilm-l6-v2').startswith('aim-all-minilm-l6-v2-')


@pytest.mark.parametrize('url, clean, password', [
    ('redis://127.0.0.1:6379/1', 'redis://127.0.0.1:6379/1', None),
    ('redis://:pw@127.0.0.1:6379/1', 'redis://127.0.0.1:6379/1', 'pw'),
    ('redis://user:p@ss@h:1/2', 'redis://user@h:1/2', 'p@ss'),
    ('mysql://u:pw@(db:3306)/jfs', 'mysql://u@(db:3306)/jfs', 'pw'),
    ('postgres://u@db:5432/jfs', 'postgres://u@db:5432/jfs', None),
    ('sqlite3:///var/lib/a@b/meta.db', 'sqlite3:///var/lib/a@b/meta.db', None),
])
def test_split_meta_url(url, clean, password):
    assert _spec.split_meta_url(url) == (clean, password)


@pytest.mark.parametrize('url', ['', 'redis', 'redis:/x:pw@h', 'http://x', 'redis://', 'redis://:pw@h /1', 'ftp://u:pw@h'])
def test_split_meta_url_refused_and_masked(url):
    with pytest.raises(_spec.SpecError) as err:
        _spec.split_meta_url(url)
    assert err.value.field == 'volume.meta_url'
    assert 'pw' not in str(err.value).replace('****', '')


def test_mask():
    assert _spec.mask_meta_url('redis://:secret@h/1') == 'redis://:****@h/1'
    assert _spec.mask_meta_url('weird:secret@h') == 'weird:****@h'


@pytest.mark.parametrize('raw', ['/mnt/a;b', '/mnt/a|b', '/mnt/a&b', '/mnt/$(id)', '/mnt/`id`', '/mnt/a*', '/mnt/a?',
                                 "/mnt/a'b", '/mnt/a"b', '/mnt/m\u043edels', '/mnt/x.', '/mnt/...', '/mnt/a>b'])
def test_mount_path_hostile_characters(raw):
    with pytest.raises(_spec.SpecError) as err:
        _spec.normalize_mount_path(raw)
    assert err.value.field == 'mount_path'


def _params(**changes):
    params = dict(model='m1', state='mounted', source_path='models/m1', mount_path=None, read_only=True, persist=True,
                  guest_mount=True, cache='auto', read_ahead_kb=1024, lock_timeout=120, agent_timeout=30,
                  device_timeout=60, guest_timeout=300,
                  volume=dict(name='labvol', meta_url='sqlite3:///x.db', meta_password=None, mount_root='/srv/volumes',
                              cache_dir=None, cache_size=None, client_path=None))
    params.update(changes)
    return params


@pytest.mark.parametrize('read_only, cache, device', [
    (True, 'auto', 'aimodel-ro'), (False, 'auto', 'aimodel-rw'), (True, 'always', 'aimodel-ro-always'),
    (False, 'always', 'aimodel-rw-always'),
])
def test_desired_names_the_shared_device_and_the_mount_root(read_only, cache, device):
    desired, volume = _spec.desired_from_params(_params(read_only=read_only, cache=cache))
    assert desired['device'] == device and desired['tag'] == _spec.derive_tag('m1')
    assert desired['mount_root'] == volume['mount_root'] == '/srv/volumes'


@pytest.mark.parametrize('field', ['lock_timeout', 'agent_timeout', 'device_timeout', 'guest_timeout'])
@pytest.mark.parametrize('value', [0, -5, 86401, None, True])
def test_timeouts_are_whole_seconds_up_to_a_day(field, value):
    with pytest.raises(_spec.SpecError) as err:
        _spec.desired_from_params(_params(**{field: value}))
    assert err.value.field == field and str(err.value).startswith(field + ': must be between 1 and 86400 seconds')
    with pytest.raises(_spec.SpecError):
        _spec.desired_from_params(_params(state='absent', **{field: value}))
    assert _spec.desired_from_params(_params(**{field: 86400}))[0]['model'] == 'm1'
