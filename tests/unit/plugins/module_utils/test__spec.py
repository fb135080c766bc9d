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
    assert _spec.mask_meta_url('weird:secret@h') == '****@h'
    assert _spec.mask_meta_url('secret@h') == '****@h'
    assert _spec.mask_meta_url('redis://h:6379/1') == 'redis://h:6379/1'


# A password with every character that separates the parts of a URL, and a '%'; its pieces are what must not show.
HARD = 'Xqv7:Zrw9/Wmk4@Kpz2%Jtn5'
PIECES = ['Xqv7', 'Zrw9', 'Wmk4', 'Kpz2', 'Jtn5']
ENCODED = 'Xqv7%3AZrw9%2FWmk4%40Kpz2%25Jtn5'


@pytest.mark.parametrize('url, clean, password', [
    ('redis://:Xqv7:Zrw9/Wmk4@Kpz2@h:6379/1', 'redis://h:6379/1', 'Xqv7:Zrw9/Wmk4@Kpz2'),
    ('redis://:%s@h:6379/1' % ENCODED, 'redis://h:6379/1', HARD),
    ('redis://user:%s@h/1' % ENCODED, 'redis://user@h/1', HARD),
    ('rediss://:a:b%40c%2fd@h/1', 'rediss://h/1', 'a:b@c/d'),            # raw and encoded mixed, lower-case hex
    ('redis://:p%2Bq+r@h/1', 'redis://h/1', 'p+q+r'),                      # '+' is a plus, as in any URL
    ('redis://:%C3%A9t%C3%A9@h/1', 'redis://h/1', '\u00e9t\u00e9'),
    ('postgres://u:%s@db:5432/jfs?sslmode=disable' % ENCODED, 'postgres://u@db:5432/jfs?sslmode=disable', HARD),
    ('mysql://u:Xqv7:Zrw9/Wmk4@Kpz2@(db:3306)/jfs', 'mysql://u@(db:3306)/jfs', 'Xqv7:Zrw9/Wmk4@Kpz2'),
    ('redis://:@h/1', 'redis://h/1', None),
])
def test_split_meta_url_decodes_the_password(url, clean, password):
    assert _spec.split_meta_url(url) == (clean, password)


@pytest.mark.parametrize('url', [
    'redis://:100%zz@h/1', 'redis://:Xqv7%Zrw9@h/1', 'redis://:Xqv7%2@h/1', 'redis://:Xqv7%@h/1',   # not an escape
    'redis://:Xqv7%FFZrw9@h/1',                                                                    # not UTF-8
])
def test_split_meta_url_refuses_an_unclear_password(url):
    with pytest.raises(_spec.SpecError) as err:
        _spec.split_meta_url(url)
    assert err.value.field == 'volume.meta_url'
    assert not [piece for piece in ('100', 'zz', 'Xqv7', 'Zrw9') if piece in str(err.value)], str(err.value)


@pytest.mark.parametrize('template', [
    'redis://:{}@h:6379/1', 'redis://user:{}@h/1', 'postgres://u:{}@db/jfs?sslmode=disable',
    'redis://:{}@h /1',                                         # refused for its white space
    'ftp://u:{}@h',                                              # refused for its scheme
    'u:{}@h:6379/1', ':{}@h:6379/1', 'redis:/:{}@h/1', '{}@h',   # not URLs at all
])
@pytest.mark.parametrize('form', [HARD, ENCODED, 'Xqv7:Zrw9@Kpz2/Wmk4', 'Xqv7@Zrw9@Kpz2'])
def test_no_piece_of_a_password_is_left_by_the_mask_or_an_error(template, form):
    value = template.format(form)
    texts = [_spec.mask_meta_url(value)]
    try:
        _spec.meta_connection(value)
    except _spec.SpecError as exc:
        texts.append(str(exc))
    for text in texts:
        assert not [piece for piece in PIECES if piece in text], text


def test_secret_forms_cover_raw_encoded_and_written():
    forms = _spec.secret_forms(HARD, 'Xqv7:Zrw9%2FWmk4@Kpz2%25Jtn5')
    assert set(forms) == set([HARD, ENCODED, 'Xqv7%3AZrw9%2FWmk4%40Kpz2%25Jtn5', 'Xqv7:Zrw9%2FWmk4@Kpz2%25Jtn5'])
    assert [len(f) for f in forms] == sorted((len(f) for f in forms), reverse=True)
    # Go's URL package leaves sub-delimiters of a password as they are.
    assert set(_spec.secret_forms("a+b;c")) == set(['a+b;c', 'a%2Bb%3Bc'])
    assert _spec.secret_forms(None) == () and _spec.secret_forms('') == ()


def test_meta_connection():
    assert _spec.meta_connection('redis://:%s@h/1' % ENCODED) == (
        'redis://h/1', HARD, _spec.secret_forms(HARD, ENCODED))
    assert _spec.meta_connection('redis://:%s@h/1' % ENCODED, HARD)[1] == HARD     # the same password, once decoded
    assert _spec.meta_connection('redis://h/1', ENCODED)[1] == ENCODED           # meta_password is taken as it is
    assert _spec.meta_connection('redis://h/1') == ('redis://h/1', None, ())
    with pytest.raises(_spec.SpecError) as err:
        _spec.meta_connection('redis://:%s@h/1' % ENCODED, ENCODED)
    assert err.value.field == 'volume.meta_password' and 'Xqv7' not in str(err.value)
    for url, password, field in [('redis://:a%00b@h/1', None, 'volume.meta_url'),
                                 ('redis://h/1', 'a\x00b', 'volume.meta_password')]:
        with pytest.raises(_spec.SpecError) as err:
            _spec.meta_connection(url, password)
        assert err.value.field == field and 'NUL' in str(err.value)


@pytest.mark.parametrize('raw', ['/mnt/a;b', '/mnt/a|b', '/mnt/a&b', '/mnt/$(id)', '/mnt/`id`', '/mnt/a*', '/mnt/a?',
                                 "/mnt/a'b", '/mnt/a"b', '/mnt/m\u043edels', '/mnt/x.', '/mnt/...', '/mnt/a>b'])
def test_mount_path_hostile_characters(raw):
    with pytest.raises(_spec.SpecError) as err:
        _spec.normalize_mount_path(raw)
    assert err.value.field == 'mount_path'


def _params(**changes):
    params = dict(model='m1', state='mounted', source_path='models/m1', mount_path=None, read_only=True, persist=True,
                  guest_mount=True, cache='auto', read_ahead_kb=1024, lock_timeout=120, agent_timeout=30,
                  device_timeout=60, volume=dict(name='labvol', meta_url='sqlite3:///x.db', meta_password=None,
                                                 mount_root='/srv/volumes', cache_dir=None, cache_size=None,
                                                 client_path=None))
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


def test_desired_connection_has_the_decoded_password_and_its_forms():
    params = _params(volume=dict(_params()['volume'], meta_url='redis://:%s@h:6379/1' % ENCODED))
    _desired, volume = _spec.desired_from_params(params)
    assert volume['meta_url'] == 'redis://h:6379/1'
    assert volume['password'] == HARD
    assert HARD in volume['secrets'] and ENCODED in volume['secrets']
