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
    ('/tmp/m', '/tmp/m'),
    ('/home/u/models', '/home/u/models'),
    ('/opt/llm/weights', '/opt/llm/weights'),
    ('/media/m', '/media/m'),
    ('/var/lib/models/a', '/var/lib/models/a'),
    ('/var/lib/aimodel/x/y', '/var/lib/aimodel/x/y'),
    ('/models', '/models'),
    ('/data/m', '/data/m'),
    ('/etcx/m', '/etcx/m'),
    ('/running/m', '/running/m'),
    ('/variable/m', '/variable/m'),
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
    ('/', 'directory / itself'),
    ('//', 'directory / itself'),
    ('/etc/', 'system directory /etc'),
    ('/usr', 'system directory'),
    ('/lib64', 'system directory'),
    ('/lib', 'system directory'),
    ('/var/.', 'system directory /var'),
    ('/tmp', 'directory /tmp itself'),
    ('/root', 'system directory'),
    ('/mnt', 'directory /mnt itself'),
    ('/srv/', 'directory /srv itself'),
    ('/home', 'directory /home itself'),
    ('/opt', 'directory /opt itself'),
    ('/media', 'directory /media itself'),
    ('/tmp/.', 'directory /tmp itself'),
    ('/var/lib/models', 'directory /var/lib/models itself'),
    ('/var/lib/aimodel/', 'directory /var/lib/aimodel itself'),
    ('/proc', 'system directory /proc'),
    ('/sys', 'system directory /sys'),
    ('/dev', 'system directory /dev'),
    ('/run', 'system directory /run'),
    ('/bin', 'system directory /bin'),
    ('/sbin', 'system directory /sbin'),
    ('/boot', 'system directory /boot'),
    ('/proc/x', 'system tree /proc: /proc/x'),
    ('/sys/fs/x', 'system tree /sys: /sys/fs/x'),
    ('/dev/shm/x', 'system tree /dev: /dev/shm/x'),
    ('/etc/x', 'system tree /etc: /etc/x'),
    ('/etc/models', 'system tree /etc'),
    ('/etc//cron.d/./m', 'system tree /etc: /etc/cron.d/m'),
    ('/root/.ssh', 'system tree /root'),
    ('/usr/lib/x', 'system tree /usr: /usr/lib/x'),
    ('/usr/local/models', 'system tree /usr'),
    ('/boot/x', 'system tree /boot'),
    ('/efi/x', 'system tree /efi'),
    ('/lib/x', 'system tree /lib: /lib/x'),
    ('/lib64/x', 'system tree /lib64'),
    ('/libx32/m', 'system tree /libx32'),
    ('/library/m', 'system tree /library'),
    ('/bin/x', 'system tree /bin'),
    ('/sbin/x', 'system tree /sbin'),
    ('/run/x', 'system tree /run'),
    ('/run/aimodel/x', 'system tree /run: /run/aimodel/x'),
    ('/run/aimodel/ro', 'system tree /run'),
    ('/var/log/x', 'system tree /var: /var/log/x'),
    ('/var/lib', 'system tree /var: /var/lib'),
    ('/var/lib/x', 'system tree /var'),
    ('/var/lib/modelsx/a', 'system tree /var: /var/lib/modelsx/a'),
    ('/var/run/m', 'system tree /var'),
    ('/var/tmp/m', 'system tree /var'),
    ('/' + 'a' * 300, 'longer than 255'),
    ('/a' * 600, 'at most 1024'),
])
def test_mount_path_refused(raw, fragment):
    with pytest.raises(_spec.SpecError) as err:
        _spec.normalize_mount_path(raw)
    assert err.value.field == 'mount_path'
    assert fragment in str(err.value)


def test_a_refused_mount_path_says_where_models_go():
    with pytest.raises(_spec.SpecError) as err:
        _spec.normalize_mount_path('/usr/lib/x')
    assert '/var/lib/models' in str(err.value) and '/mnt' in str(err.value)


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
    params = dict(uri='qemu:///system', model='m1', state='mounted', source_path='models/m1', mount_path=None, read_only=True, persist=True,
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


@pytest.mark.parametrize('url, secrets', [
    ('redis://:p:w/@d@host:6379/1', ['p%3Aw%2F%40d', 'p:w/@d']),
    ('redis://user:p%40ss@host/1', ['p%40ss', 'p@ss']),
    ('redis://user:p:w%2Fd@host/1', ['p%3Aw%2Fd', 'p:w%2Fd', 'p:w/d']),
    ('not a url user:pw@host', ['pw']),
    ('redis://host:6379/1', []),
    ('sqlite3:///var/x@y.db', []),
    (None, []),
])
def test_url_secrets_finds_what_to_mask(url, secrets):
    assert _spec.url_secrets(url) == secrets


@pytest.mark.parametrize('uri', list(_spec.LOCAL_URIS))
def test_local_uris_are_accepted(uri):
    assert _spec.validate_uri(uri) == uri


@pytest.mark.parametrize('uri, why', [
    ('qemu+ext:///system?command=/bin/touch', "transport 'ext', which runs an external program"),
    ('qemu+ssh://root@hv2/system', "transport 'ssh', which runs ssh"),
    ('qemu+ssh://127.0.0.1/system', "transport 'ssh'"),
    ('qemu+libssh://hv2/system', "transport 'libssh'"),
    ('qemu+libssh2://hv2/system?known_hosts=/x', "transport 'libssh2'"),
    ('qemu+tcp://hv2/system', "transport 'tcp', which connects over the network"),
    ('qemu+tls://hv2/system', "transport 'tls'"),
    ('qemu+xyz:///system', "transport 'xyz', which is not the local socket"),
    ('qemu://hv2/system', "names a host ('hv2')"),
    ('qemu://localhost/system', 'names a host'),
    ('qemu+unix://hv2/system', 'names a host'),
    ('qemu:///system?socket=/tmp/evil.sock', 'has parameters'),
    ('qemu+unix:///system?socket=/run/libvirt/libvirt-sock', 'has parameters'),
    ('qemu:///system?mode=legacy', 'has parameters'),
    ('qemu:///system#x', 'fragment'),
    ('qemu:///embed?root=/tmp/x', 'has parameters'),
    ('qemu:///embed', "path '/embed'"),
    ('qemu:///system/', "path '/system/'"),
    ('qemu:///', "path '/'"),
    ('test:///default', "driver 'test'"),
    ('lxc:///system', "driver 'lxc'"),
    ('xen+ssh://hv2/', "driver 'xen'"),
    ('QEMU:///system', "driver 'QEMU'"),
    ('hv2', 'alias'),
    ('qemu:system', 'alias'),
])
def test_other_uris_are_refused_saying_why(uri, why):
    with pytest.raises(_spec.SpecError) as err:
        _spec.validate_uri(uri)
    assert err.value.field == 'uri'
    assert str(err.value).startswith('uri: ')
    assert why in str(err.value), str(err.value)
    assert 'qemu:///system' in str(err.value)


@pytest.mark.parametrize('uri', ['', 'qemu:///system\n', 'qemu:///sys\x00tem', None])
def test_uri_text_is_checked(uri):
    with pytest.raises(_spec.SpecError) as err:
        _spec.validate_uri(uri)
    assert err.value.field == 'uri'


@pytest.mark.parametrize('raw, normalized', [
    ('/var/lib/aimodel/volumes', '/var/lib/aimodel/volumes'),
    ('/var/lib/aimodel/volumes/', '/var/lib/aimodel/volumes'),
    ('//srv//volumes/./x', '/srv/volumes/x'),
    ('/usr/local/bin/juicefs', '/usr/local/bin/juicefs'),
])
def test_host_path_normalized(raw, normalized):
    assert _spec.normalize_host_path(raw, 'volume.mount_root') == normalized


@pytest.mark.parametrize('raw, fragment', [
    ('cache', 'absolute'),
    ('./cache', 'absolute'),
    ('~/cache', 'absolute'),
    ('/var/cache/../../tmp/x', '".."'),
    ('/var/cache/..', '".."'),
    ('/', 'root directory'),
    ('//./', 'root directory'),
    ('/proc/self/cwd', 'pseudo file system /proc'),
    ('/dev/shm/cache', 'pseudo file system /dev'),
    ('/sys', 'pseudo file system /sys'),
    ('/var/a\nb', 'control'),
    ('', 'must not be empty'),
    ('/a' * 600, 'at most 1024'),
])
def test_host_path_refused(raw, fragment):
    with pytest.raises(_spec.SpecError) as err:
        _spec.normalize_host_path(raw, 'volume.cache_dir')
    assert err.value.field == 'volume.cache_dir'
    assert fragment in str(err.value)


@pytest.mark.parametrize('key', list(_spec.HOST_PATH_OPTIONS))
def test_desired_refuses_a_relative_host_path_naming_its_option(key):
    params = _params()
    params['volume'][key] = 'relative/' + key
    with pytest.raises(_spec.SpecError) as err:
        _spec.desired_from_params(params)
    assert err.value.field == 'volume.' + key


def test_desired_normalizes_the_host_paths():
    params = _params()
    params['volume'].update(mount_root='/srv//volumes/', cache_dir='/var/cache/./jfs', client_path='/opt/jfs//juicefs')
    desired, volume = _spec.desired_from_params(params)
    assert desired['mount_root'] == volume['mount_root'] == '/srv/volumes'
    assert volume['cache_dir'] == '/var/cache/jfs' and volume['client_path'] == '/opt/jfs/juicefs'


@pytest.mark.parametrize('state', ['mounted', 'absent'])
def test_desired_refuses_a_remote_uri_with_either_state(state):
    with pytest.raises(_spec.SpecError) as err:
        _spec.desired_from_params(_params(uri='qemu+ssh://hv2/system', state=state))
    assert err.value.field == 'uri'


def test_desired_refuses_a_mount_path_in_a_system_tree():
    with pytest.raises(_spec.SpecError) as err:
        _spec.desired_from_params(_params(mount_path='/var/log/x'))
    assert err.value.field == 'mount_path' and 'system tree /var' in str(err.value)


def test_desired_connection_has_the_decoded_password_and_its_forms():
    params = _params(volume=dict(_params()['volume'], meta_url='redis://:%s@h:6379/1' % ENCODED))
    _desired, volume = _spec.desired_from_params(params)
    assert volume['meta_url'] == 'redis://h:6379/1'
    assert volume['password'] == HARD
    assert HARD in volume['secrets'] and ENCODED in volume['secrets']


@pytest.mark.parametrize('field', ['lock_timeout', 'agent_timeout', 'device_timeout', 'guest_timeout'])
@pytest.mark.parametrize('value', [0, -5, 86401, None, True])
def test_timeouts_are_whole_seconds_up_to_a_day(field, value):
    with pytest.raises(_spec.SpecError) as err:
        _spec.desired_from_params(_params(**{field: value}))
    assert err.value.field == field and str(err.value).startswith(field + ': must be between 1 and 86400 seconds')
    with pytest.raises(_spec.SpecError):
        _spec.desired_from_params(_params(state='absent', **{field: value}))
    assert _spec.desired_from_params(_params(**{field: 86400}))[0]['model'] == 'm1'
