# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vm_model_mount through its main(), on the fake domain and host of conftest: one shared virtiofs device per VM
and access mode, each model pinned into the VM's export tree and bound in the guest from the device's base mount."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import copy
import json

import pytest

from ansible_collections.aimodel.kvm.plugins.module_utils import _export
from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _juicefs
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _record
from ansible_collections.aimodel.kvm.plugins.module_utils import _spec
from ansible_collections.aimodel.kvm.plugins.modules import vm_model_mount
from ansible_collections.aimodel.kvm.tests.unit.plugins.fakes import FAKE_IDENTITY, RHEL8_BLOCKED, UUID, GuestClock, guest_run, \
    slow_guest

TAG = _spec.derive_tag('m1')
TAG2 = _spec.derive_tag('m2')
DEVICE = 'aimodel-ro'
BASE = '/run/aimodel/ro'
VIEW = _export.view_dir(UUID, 'ro')
POINT = '/var/lib/aimodel/volumes/labvol/ro'
ARGS = {
    'vm': 'vm1',
    'model': 'm1',
    'source_path': 'models/m1',
    'volume': {'name': 'labvol', 'meta_url': 'redis://:s3cr3t-pw@127.0.0.1:16379/1'},
}
ARGS2 = dict(ARGS, model='m2', source_path='models/m2')
ABSENT = {'vm': 'vm1', 'model': 'm1', 'state': 'absent'}
# Directories that a base mount leaves in the guest: where every later base mount of a device goes.
BASE_DIRS = set(['/run', '/run/aimodel', BASE, '/run/aimodel/rw'])
GUEST_DIRS = set(['/mnt', '/persist', '/etc'])


def snapshot(dom):
    host = dom.host
    return copy.deepcopy((dom.live, dom.config, dom.meta, dom.guest.mounts, dom.guest.files,
                          host.binds, host.views, host.state))


def guest_targets(dom):
    """Where models are bound in the guest, in mount order."""
    return [target for target, _root, _opts in dom.guest.model_mounts()]


def bases(dom):
    """(device, base, options) of the guest's mounts of a device at its base."""
    return [(m['source'], m['target'], m['options']) for m in dom.guest.virtiofs_mounts() if m['root'] == '/']


def base_line(device='aimodel-ro', read_only=True):
    return _guest.fstab_base_line(device, _export.guest_base(device[len('aimodel-'):]), read_only)


def bind_line(tag=TAG, mount_path='/mnt/models/m1', key='ro', read_only=True):
    base = _export.guest_base(key)
    return _guest.fstab_bind_line('%s/%s' % (base, tag), mount_path, base, read_only)


def guest_read_ahead(domain, device=DEVICE):
    mount = [m for m in domain.guest.virtiofs_mounts() if m['source'] == device and m['root'] == '/'][-1]
    return domain.guest.read_ahead(mount['dev'])


def pins(host):
    return [c for c in host.calls if c[0] == 'pin']


# --- the first mount, and runs that change nothing ---------------------------------------------------

def test_mount_running_vm(domain, host, run_module):
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True, result
    assert result['mount']['status'] == 'mounted'
    assert result['mount']['mount_path'] == '/mnt/models/m1'
    assert result['actions'] == [
        'create the mount point /mnt/models/m1 in the guest',
        'mount volume labvol read-only on the host at %s' % POINT,
        'pin models/m1 of volume labvol into the export tree of the VM (%s/%s)' % (VIEW, TAG),
        'attach the shared virtiofs device %s for %s (live and persistent)' % (DEVICE, VIEW),
        'mount the shared device %s at %s in the guest (ro)' % (DEVICE, BASE),
        'set the readahead of %s in the guest to 1024 KiB' % DEVICE,
        'write the fstab lines of m1 in the guest',
        'bind %s/%s at /mnt/models/m1 in the guest (ro)' % (BASE, TAG),
        'write the record of m1 (live and persistent)',
    ]
    assert domain.live == [(DEVICE, VIEW)]
    assert domain.config == domain.live
    assert ('attach', True, True) in domain.calls, 'live and persistent in one call'
    assert bases(domain) == [(DEVICE, BASE, 'ro,nosuid,nodev')]
    assert domain.guest.model_mounts() == [('/mnt/models/m1', '/' + TAG, 'ro,nosuid,nodev')]
    assert host.pinned(UUID) == {TAG: ('ro', 'models/m1', True)}
    fstab = domain.guest.files['/etc/fstab']
    assert fstab.endswith(base_line() + '\n' + bind_line() + '\n'), 'the base line comes before the bind'
    assert fstab.startswith('# static\n/dev/vda /persist ext4'), 'other fstab lines are kept'
    rec = domain.records()['m1']
    assert (rec['source_path'], rec['tag'], rec['device'], rec['mount_root']) == \
        ('models/m1', TAG, DEVICE, '/var/lib/aimodel/volumes')
    assert domain.records(config=True)['m1']['mount_path'] == '/mnt/models/m1'
    assert result['mount']['device'] == DEVICE
    # The host volume was mounted once, read-only, the password kept out of the URL.
    assert host.mount_calls == [{'volume': 'labvol', 'meta_url': 'redis://127.0.0.1:16379/1', 'password': 's3cr3t-pw',
                                 'point': POINT}]


def test_second_run_changes_nothing(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    before = snapshot(domain)
    calls, host_calls = len(domain.calls), len(host.calls)
    domain.guest.argvs = []
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is False, result
    assert result['actions'] == []
    assert snapshot(domain) == before
    assert len(domain.calls) == calls and len(host.calls) == host_calls
    assert domain.guest.argvs == [], 'a no-op starts no guest process'


def test_check_mode_changes_nothing(domain, host, run_module):
    before = snapshot(domain)
    result = run_module(vm_model_mount, ARGS, check=True)
    assert result['changed'] is True
    assert any('attach' in a for a in result['actions']) and any(a.startswith('pin ') for a in result['actions'])
    assert snapshot(domain) == before
    assert host.mount_calls == [] and host.calls == []


def test_diff_shows_record(domain, host, run_module):
    result = run_module(vm_model_mount, ARGS, diff=True)
    assert result['diff']['before'] == {}
    assert result['diff']['after']['mount_path'] == '/mnt/models/m1'
    assert result['diff']['after']['device'] == DEVICE
    # The record names the volume's engine without its password, and keeps its UUID.
    assert result['diff']['after']['meta_url'] == 'redis://127.0.0.1:16379/1'
    assert result['diff']['after']['volume_uuid'] == FAKE_IDENTITY[1]
    assert 's3cr3t-pw' not in json.dumps(result) and 'verified' not in result['diff']['after']


@pytest.mark.parametrize('variant', ['/mnt/models/./m1', '/mnt/models//m1/', '/mnt//models/m1/.'])
def test_normalized_mount_path_is_one_mount(domain, host, run_module, variant):
    run_module(vm_model_mount, dict(ARGS, mount_path='/mnt/models/m1'))
    result = run_module(vm_model_mount, dict(ARGS, mount_path=variant))
    assert result['changed'] is False, result
    assert len(domain.live) == 1 and guest_targets(domain) == ['/mnt/models/m1']
    assert domain.records()['m1']['mount_path'] == '/mnt/models/m1'


# --- refusals before any change ------------------------------------------------------------------------

def test_other_model_at_same_path_fails(domain, host, run_module):
    run_module(vm_model_mount, dict(ARGS, mount_path='/srv/m'))
    before = snapshot(domain)
    result = run_module(vm_model_mount, dict(ARGS2, mount_path='/srv/m/'))
    assert result['failed']
    assert 'm1' in result['msg'] and 'm2' in result['msg'] and '/srv/m' in result['msg']
    assert snapshot(domain) == before


def test_foreign_guest_mount_at_path_fails(domain, host, run_module):
    domain.guest.add_mount('/dev/vdb', '/mnt/models/m1', 'ext4', 'rw')
    before = snapshot(domain)
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and '/dev/vdb' in result['msg'] and 'nothing was changed' in result['msg']
    assert snapshot(domain) == before and host.calls == []


def test_missing_source_fails_before_change(domain, host, run_module):
    host.state[POINT] = 'mounted'
    before = snapshot(domain)
    result = run_module(vm_model_mount, dict(ARGS, source_path='models/nope'))
    assert result['failed'] and result['field'] == 'source_path'
    assert 'model m1 not found at models/nope in volume labvol' in result['msg']
    assert snapshot(domain) == before and host.calls == []


def test_refused_source_fails_before_change(domain, host, run_module):
    # A symlink in the volume is never followed: the host's walk refuses it, and the error names the field.
    host.state[POINT] = 'mounted'
    host.refused[POINT + '/models/m1'] = 'models/m1 is a symbolic link (symbolic links in a volume are never followed)'
    before = snapshot(domain)
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and result['field'] == 'source_path'
    assert result['msg'].startswith('source_path:') and 'symbolic link' in result['msg']
    assert snapshot(domain) == before and host.calls == []


def test_no_shared_memory(domain, host, run_module):
    domain.shared_memory = False
    result = run_module(vm_model_mount, ARGS)
    assert result['failed']
    assert "<access mode='shared'/>" in result['msg'] and 'restart' in result['msg']
    assert domain.calls == [] and host.calls == []


def test_guest_unreachable_fails_before_change(domain, host, run_module):
    domain.guest.reachable = False
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and 'guest agent' in result['msg']
    assert domain.live == [] and domain.meta['live'] is None and host.calls == []


def test_two_live_devices_with_the_shared_tag_are_refused(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    domain.attach(_libvirt.filesystem_xml(VIEW, DEVICE), True, False)    # libvirt does not refuse a live duplicate
    before = snapshot(domain)
    result = run_module(vm_model_mount, ARGS2)
    assert result['failed'] and 'has 2 live devices with tag %s' % DEVICE in result['msg']
    assert snapshot(domain) == before


def test_a_device_with_the_shared_tag_serving_something_else_is_refused(domain, host, run_module):
    domain.attach(_libvirt.filesystem_xml('/srv/elsewhere', DEVICE), True, True)
    before = snapshot(domain)
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and '/srv/elsewhere' in result['msg'] and 'nothing was changed' in result['msg']
    assert snapshot(domain) == before


@pytest.mark.parametrize('args, field', [
    (dict(ARGS, mount_path='relative'), 'mount_path'),
    (dict(ARGS, mount_path='/etc'), 'mount_path'),
    (dict(ARGS, mount_path='/mnt/../etc/x'), 'mount_path'),
    (dict(ARGS, mount_path='/mnt/a\nb'), 'mount_path'),
    (dict(ARGS, model='a/b'), 'model'),
    (dict(ARGS, model='x;reboot'), 'model'),
    (dict(ARGS, model=''), 'model'),
    (dict(ARGS, source_path='../x'), 'source_path'),
    (dict(ARGS, source_path='/'), 'source_path'),
    (dict(ARGS, read_ahead_kb=-1), 'read_ahead_kb'),
    (dict(ARGS, read_ahead_kb=65537), 'read_ahead_kb'),
    (dict(ARGS, guest_timeout=0), 'guest_timeout'),
    (dict(ARGS, volume={'name': 'labvol', 'meta_url': 'nonsense:pw@x'}), 'volume.meta_url'),
    (dict(ARGS, volume={'name': 'bad name', 'meta_url': 'sqlite3:///x.db'}), 'volume.name'),
    ({'vm': 'vm1', 'model': 'm1', 'volume': ARGS['volume']}, 'source_path'),
])
def test_bad_input_fails_before_change(domain, host, run_module, args, field):
    before = snapshot(domain)
    result = run_module(vm_model_mount, args)
    assert result['failed'], result
    assert result['field'] == field
    assert result['msg'].startswith(field + ':')
    assert 'pw@' not in result['msg'] or '****' in result['msg']
    assert snapshot(domain) == before and host.mount_calls == [] and host.calls == []


def test_cache_never_is_no_choice_and_the_error_names_cache(domain, host, run_module):
    before = snapshot(domain)
    result = run_module(vm_model_mount, dict(ARGS, cache='never'))
    assert result['failed'] and 'cache' in result['msg'] and 'never' in result['msg'], result
    assert snapshot(domain) == before and host.mount_calls == [] and host.calls == []


@pytest.mark.parametrize('args, field', [
    (dict(ARGS, mount_path='/etc/x'), 'mount_path'),
    (dict(ARGS, mount_path='/usr/lib/x'), 'mount_path'),
    (dict(ARGS, mount_path='/run/aimodel/x'), 'mount_path'),
    (dict(ARGS, mount_path='/var/log/x'), 'mount_path'),
    (dict(ARGS, uri='qemu+ext:///system?command=/bin/touch'), 'uri'),
    (dict(ARGS, uri='qemu+ssh://root@hv2/system'), 'uri'),
    (dict(ARGS, uri='test:///default'), 'uri'),
    (dict(ABSENT, uri='qemu+tcp://hv2/system'), 'uri'),
    (dict(ARGS, volume=dict(ARGS['volume'], cache_dir='cache')), 'volume.cache_dir'),
    (dict(ARGS, volume=dict(ARGS['volume'], mount_root='volumes/../x')), 'volume.mount_root'),
    (dict(ARGS, volume=dict(ARGS['volume'], client_path='bin/juicefs')), 'volume.client_path'),
    (dict(ARGS, volume=dict(ARGS['volume'], mount_root='/')), 'volume.mount_root'),
])
def test_options_acting_on_the_host_are_checked_before_anything(domain, host, run_module, monkeypatch, args, field):
    connected = []
    monkeypatch.setattr(_libvirt, 'connect', connected.append)
    before = snapshot(domain)
    result = run_module(vm_model_mount, args)
    assert result['failed'] and result['field'] == field and result['msg'].startswith(field + ': '), result
    assert connected == [] and snapshot(domain) == before and host.mount_calls == [] and host.calls == []


@pytest.mark.parametrize('key, path, tree', [
    ('client_path', '/srv/open/juicefs', [('/srv', 'dir', 0, 0o755), ('/srv/open', 'dir', 0, 0o777),
                                          ('/srv/open/juicefs', 'file', 0, 0o755)]),
    ('client_path', '/opt/juicefs', [('/opt', 'dir', 0, 0o755), ('/opt/juicefs', 'file', 1000, 0o755)]),
    ('mount_root', '/tmp/mr', [('/tmp', 'dir', 0, 0o1777)]),
    ('cache_dir', '/var/cache/jfs', [('/var', 'dir', 0, 0o755), ('/var/cache', 'dir', 1000, 0o755)]),
    ('cache_dir', '/srv/cache', [('/srv', 'link', 0, 0o777, '/tmp'), ('/tmp', 'dir', 0, 0o1777)]),
])
def test_host_paths_that_others_can_change_are_refused_before_anything(domain, host, run_module, key, path, tree):
    for node in tree:
        host.tree.add(node[0], node[1], node[2], node[3], node[4] if len(node) > 4 else None)
    before = snapshot(domain)
    result = run_module(vm_model_mount, dict(ARGS, volume=dict(ARGS['volume'], **{key: path})))
    assert result['failed'] and result['field'] == 'volume.' + key, result
    assert result['msg'].startswith('volume.%s: ' % key)
    assert snapshot(domain) == before and host.mount_calls == [] and host.calls == []


def test_trusted_host_paths_are_used_normalized(domain, host, run_module):
    host.tree.add('/srv').add('/srv/volumes')
    host.dirs.add('/srv/volumes/labvol/ro/models/m1')
    result = run_module(vm_model_mount, dict(ARGS, volume=dict(ARGS['volume'], mount_root='/srv//volumes/',
                                                               client_path='/srv/juicefs')))
    assert not result.get('failed'), result
    assert result['mount']['mount_root'] == '/srv/volumes'
    assert host.mount_calls[0]['point'] == '/srv/volumes/labvol/ro'


@pytest.mark.parametrize('mount_path', ['/var/lib/models/m1', '/var/lib/aimodel/m1', '/tmp/m1', '/home/u/m1'])
def test_documented_data_places_hold_models(domain, host, run_module, mount_path):
    result = run_module(vm_model_mount, dict(ARGS, mount_path=mount_path))
    assert not result.get('failed'), result
    assert result['mount']['mount_path'] == mount_path


def test_volume_not_a_dict_names_the_field(domain, host, run_module):
    result = run_module(vm_model_mount, dict(ARGS, volume='not-a-dict'))
    assert result['failed'] and result['msg'].startswith('volume:')


def test_mount_point_that_is_a_file_fails_before_any_device(domain, host, run_module):
    domain.guest.files['/srv/blocker'] = 'x'
    result = run_module(vm_model_mount, dict(ARGS, mount_path='/srv/blocker'))
    assert result['failed'] and 'File exists' in result['msg']
    assert not [c for c in domain.calls if c[0] == 'attach']
    assert host.mount_calls == [] and host.calls == [], 'nor is the host volume mounted or anything pinned for it'
    assert 'Rolled back: nothing was left to roll back' in result['msg']


def test_lock_timeout_changes_nothing(domain, host, run_module, tmp_path):
    import fcntl
    import os
    lock_dir = tmp_path / 'locks'
    lock_dir.mkdir()
    fd = os.open(str(lock_dir / ('vm-%s.lock' % domain.uuid)), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        result = run_module(vm_model_mount, dict(ARGS, lock_timeout=1))
    finally:
        os.close(fd)
    assert result['failed'] and 'lock_timeout' in result['msg']
    assert domain.calls == [] and host.calls == []


def test_mounted_missing_vm_fails(domain, host, run_module):
    result = run_module(vm_model_mount, dict(ARGS, vm='gone'))
    assert result['failed'] and 'gone' in result['msg']


def test_shared_memory_forgotten_by_libvirt_is_explained(domain, host, run_module, monkeypatch):
    def refuse(device_xml, live, config):
        raise _libvirt.VirtError("cannot attach: unsupported configuration: 'virtiofs' requires shared memory", 67)
    monkeypatch.setattr(domain, 'attach', refuse)
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and 'libvirtd restarts' in result['msg'] and 'Restart the VM' in result['msg']


# --- secrets -------------------------------------------------------------------------------------------

def test_password_never_in_output_or_records(domain, host, run_module):
    result = run_module(vm_model_mount, dict(ARGS, volume=dict(ARGS['volume'], meta_password=None)), diff=True)
    text = json.dumps(result) + json.dumps(domain.meta) + json.dumps(domain.guest.files) + repr(domain.guest.argvs)
    text += repr(host.binds) + repr(domain.live) + repr(domain.config)
    assert 's3cr3t-pw' not in text


def test_volume_secrets_from_environment(domain, host, run_module, monkeypatch):
    monkeypatch.setenv('AIMODEL_META_URL', 'redis://127.0.0.1:16379/1')
    monkeypatch.setenv('AIMODEL_META_PASSWORD', 'env-secret')
    monkeypatch.setenv('LIBVIRT_DEFAULT_URI', 'qemu:///system')
    result = run_module(vm_model_mount, dict(ARGS, volume={'name': 'labvol'}))
    assert result['changed'] is True, result
    assert host.mount_calls[0]['meta_url'] == 'redis://127.0.0.1:16379/1'
    assert host.mount_calls[0]['password'] == 'env-secret'
    assert 'env-secret' not in json.dumps(result) + json.dumps(domain.meta)


@pytest.mark.parametrize('url', ['redis://:Xqv7%3AZrw9%2FWmk4%40Kpz2%25Jtn5@127.0.0.1:16379/1',
                                 'redis://:Xqv7:Zrw9/Wmk4@Kpz2%25Jtn5@127.0.0.1:16379/1'])
def test_a_password_with_url_delimiters_reaches_the_client_decoded(domain, host, run_module, monkeypatch, url):
    monkeypatch.setenv('AIMODEL_META_URL', url)
    result = run_module(vm_model_mount, dict(ARGS, volume={'name': 'labvol'}), diff=True)
    assert result['changed'] is True, result
    assert host.mount_calls[0]['meta_url'] == 'redis://127.0.0.1:16379/1'
    assert host.mount_calls[0]['password'] == 'Xqv7:Zrw9/Wmk4@Kpz2%Jtn5'
    text = json.dumps(result) + json.dumps(domain.meta)
    assert not [piece for piece in ('Xqv7', 'Zrw9', 'Wmk4', 'Kpz2', 'Jtn5') if piece in text]


def test_an_unclear_password_in_the_url_fails_without_showing_it(domain, host, run_module):
    result = run_module(vm_model_mount, dict(ARGS, volume=dict(ARGS['volume'], meta_url='redis://:Xqv7%Zrw9@h/1')))
    assert result['failed'] and result['field'] == 'volume.meta_url' and '%25' in result['msg']
    assert 'Xqv7' not in json.dumps(result) and 'Zrw9' not in json.dumps(result) and host.mount_calls == []


# --- rollback ------------------------------------------------------------------------------------------

def test_guest_mount_failure_rolls_back(domain, host, run_module):
    domain.guest.fail_mount = 'Permission denied'
    before = snapshot(domain)
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and 'mount the shared device %s at %s in the guest (ro) failed' % (DEVICE, BASE) in result['msg']
    assert 'Rolled back' in result['msg'] and 'detached device %s' % DEVICE in result['msg']
    assert 'took %s out of the export tree again' % TAG in result['msg']
    assert 'NOT rolled back' not in result['msg']
    assert domain.live == [] and domain.config == []
    assert domain.meta == before[2]
    assert domain.guest.files == before[4]
    assert host.binds == {}


def test_pin_failure_rolls_back(domain, host, run_module):
    host.fail_pin = 'Operation not permitted'
    before = snapshot(domain)
    result = run_module(vm_model_mount, dict(ARGS, mount_path='/mnt/new/m1'))
    assert result['failed']
    assert 'pin models/m1 of volume labvol' in result['msg'] and 'failed: source_path: ' in result['msg']
    assert 'Operation not permitted' in result['msg']
    assert 'removed the directories it created' in result['msg']
    assert not [c for c in domain.calls if c[0] == 'attach']
    assert domain.guest.dirs == GUEST_DIRS and domain.meta == before[2] and domain.live == []


def test_fstab_write_failure_rolls_back(domain, host, run_module):
    # The fstab lines are written between the base mount and the bind (while the guest discovers the device).
    domain.guest.read_only_files.add('/etc/fstab')
    before = snapshot(domain)
    result = run_module(vm_model_mount, dict(ARGS, mount_path='/mnt/new/m1'))
    assert result['failed']
    assert 'write the fstab lines of m1' in result['msg'] and 'Read-only file system' in result['msg']
    assert 'detached device' in result['msg'] and 'NOT rolled back' not in result['msg']
    assert 'unmounted %s from %s in the guest' % (DEVICE, BASE) in result['msg']
    assert domain.live == [] and domain.config == []
    assert domain.meta == before[2]
    assert domain.guest.files == before[4]
    assert guest_targets(domain) == [] and bases(domain) == []
    assert domain.guest.dirs - BASE_DIRS == GUEST_DIRS
    assert host.binds == {}


def test_record_failure_rolls_back_every_step(domain, host, run_module):
    # The record is written last: its failure undoes the bind, the fstab lines, the base mount, the device, the
    # pin and the mount point, in that order.
    domain.fail_metadata = 1
    before = snapshot(domain)
    result = run_module(vm_model_mount, dict(ARGS, mount_path='/mnt/new/m1'))
    assert result['failed'] and 'write the record of m1' in result['msg']
    rolled = result['msg'].split('Rolled back: ')[1]
    order = ['unmounted /mnt/new/m1 from the guest', 'restored the guest fstab',
             'unmounted %s from %s in the guest' % (DEVICE, BASE), 'detached device %s' % DEVICE,
             'took %s out of the export tree again' % TAG, 'removed the directories']
    assert [rolled.index(text) for text in order] == sorted(rolled.index(text) for text in order), rolled
    assert 'NOT rolled back' not in result['msg']
    after = snapshot(domain)
    assert after[:5] == before[:5] and host.binds == {}
    assert domain.guest.dirs - BASE_DIRS == GUEST_DIRS


def test_rollback_message_keeps_the_shared_host_volume(domain, host, run_module):
    domain.guest.fail_mount = 'Permission denied'
    result = run_module(vm_model_mount, ARGS)
    assert 'Kept on purpose: host volume labvol stays mounted' in result['msg']
    assert 'NOT rolled back' not in result['msg']


def test_rollback_removes_only_the_directories_it_created(domain, host, run_module):
    domain.guest.fail_mount = 'Permission denied'
    result = run_module(vm_model_mount, dict(ARGS, mount_path='/mnt/new/deep/m1'))
    assert result['failed'] and 'removed the directories it created' in result['msg']
    assert domain.guest.dirs - BASE_DIRS == GUEST_DIRS


def test_bind_failure_keeps_the_device_of_other_models(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    before = snapshot(domain)
    # The second model's directory is taken out of the export tree right after it was pinned: its bind fails.
    real_pin = host.pin

    def pin_then_lose(uuid, key, entry, point, source_path, read_only):
        real_pin(uuid, key, entry, point, source_path, read_only)
        if entry == TAG2:
            del host.binds[(uuid, key, entry)]
    host.pin = pin_then_lose
    result = run_module(vm_model_mount, ARGS2)
    assert result['failed'] and 'bind %s/%s at /mnt/models/m2 in the guest (ro) failed' % (BASE, TAG2) in result['msg']
    assert 'restored the guest fstab' in result['msg'] and 'NOT rolled back' not in result['msg']
    assert snapshot(domain)[:5] == before[:5], 'the shared device, its base mount and m1 stay'


@pytest.mark.parametrize('failing_read', [2, 3], ids=['after the base mount', 'after the bind'])
def test_mount_table_failure_after_a_guest_mount_takes_the_mount_back(domain, host, run_module, monkeypatch, failing_read):
    real = _guest.Agent.mounts
    calls = []

    def flaky(agent):
        calls.append(1)
        if len(calls) == failing_read:   # 1: the read model; 2: after the base mount; 3: after the bind
            raise _guest.GuestError('guest agent of VM vm1 did not answer guest-file-open: injected', unreachable=True)
        return real(agent)
    monkeypatch.setattr(_guest.Agent, 'mounts', flaky)
    before = snapshot(domain)
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and 'injected' in result['msg']
    assert guest_targets(domain) == [] and bases(domain) == [] and domain.live == [] and domain.config == []
    assert snapshot(domain)[:5] == before[:5]


# --- a guest that answers slowly -------------------------------------------------------------------------

@pytest.fixture
def clock(monkeypatch):
    fake = GuestClock()
    monkeypatch.setattr(_guest, 'time', fake)
    return fake


@pytest.mark.parametrize('other, guest_timeout', [(False, t) for t in range(3, 25)] + [(True, t) for t in range(3, 22)])
def test_a_slow_guest_uses_up_guest_timeout_at_any_step_and_the_run_is_rolled_back(domain, host, run_module, clock,
                                                                                   guest_timeout, other):
    # Each answer takes 1 s of the guest; a first mount asks it 25 times, a second one (on the device that is
    # there) about 20: whichever call the time runs out at, the run fails, says so, and leaves the VM as it was.
    if other:
        run_module(vm_model_mount, ARGS2)
    slow_guest(domain, clock, 1)
    before = snapshot(domain)
    result = run_module(vm_model_mount, dict(ARGS, mount_path='/mnt/new/m1', guest_timeout=guest_timeout))
    assert result['failed']
    assert 'the guest of VM vm1 answered out of bounds: it used up the guest time of the run (guest_timeout, %d s)' \
        % guest_timeout in result['msg']
    assert 'NOT rolled back' not in result['msg'], 'the rollback gets agent_timeout more'
    assert snapshot(domain)[:5] == before[:5]
    assert sorted(host.binds) == sorted(before[5])
    if 'create the mount point /mnt/new/m1 in the guest failed' in result['msg']:
        # mkdir's answer never came, so which directories it created is not known: empty ones may stay.
        assert domain.guest.dirs - BASE_DIRS - set(['/mnt/models', '/mnt/models/m2']) <= \
            GUEST_DIRS | set(['/mnt/new', '/mnt/new/m1'])
    else:
        assert domain.guest.dirs - BASE_DIRS - set(['/mnt/models', '/mnt/models/m2']) == GUEST_DIRS
    assert clock.now - 1000 <= guest_timeout + 30


def test_a_run_that_uses_up_guest_timeout_half_way_says_what_it_rolled_back(domain, host, run_module, clock):
    slow_guest(domain, clock, 1)
    result = run_module(vm_model_mount, dict(ARGS, mount_path='/mnt/new/m1', guest_timeout=15))
    assert result['failed'] and 'Done before the failure' in result['msg']
    assert 'Rolled back: ' in result['msg'] and 'detached device %s' % DEVICE in result['msg']


def test_a_guest_that_stalls_every_call_fails_the_run_before_any_change(domain, host, run_module, clock):
    # Each answer comes just within agent_timeout: without guest_timeout a run would last 25 such answers.
    timeouts = slow_guest(domain, clock, 29)
    before = snapshot(domain)
    result = run_module(vm_model_mount, dict(ARGS, guest_timeout=60))
    assert result['failed'] and 'nothing was changed' in result['msg']
    assert 'answered out of bounds: it used up the guest time of the run (guest_timeout, 60 s)' in result['msg']
    assert timeouts == [30, 30, 2]
    assert snapshot(domain) == before and host.mount_calls == [] and host.calls == []
    assert clock.now - 1000 <= 60


def test_a_guest_that_stalls_fails_absent_before_any_change(domain, host, run_module, clock):
    run_module(vm_model_mount, ARGS)
    slow_guest(domain, clock, 29)
    before = snapshot(domain)
    result = run_module(vm_model_mount, dict(ABSENT, guest_timeout=60))
    assert result['failed'] and 'used up the guest time of the run' in result['msg']
    assert 'the guest side cannot be read' in result['msg'] and 'nothing was changed' in result['msg']
    assert snapshot(domain) == before


# --- the shared device -----------------------------------------------------------------------------------

def test_first_model_attaches_the_shared_device_and_a_second_attaches_nothing(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    assert domain.calls.count(('attach', True, True)) == 1
    calls = len(domain.calls)
    result = run_module(vm_model_mount, ARGS2)
    assert result['changed'] is True
    assert result['actions'] == [
        'create the mount point /mnt/models/m2 in the guest',
        'pin models/m2 of volume labvol into the export tree of the VM (%s/%s)' % (VIEW, TAG2),
        'write the fstab lines of m2 in the guest',
        'bind %s/%s at /mnt/models/m2 in the guest (ro)' % (BASE, TAG2),
        'write the record of m2 (live and persistent)',
    ]
    assert not [c for c in domain.calls[calls:] if c[0] in ('attach', 'detach')]
    assert domain.live == [(DEVICE, VIEW)] and domain.config == [(DEVICE, VIEW)]
    assert bases(domain) == [(DEVICE, BASE, 'ro,nosuid,nodev')]
    assert domain.guest.model_mounts() == [('/mnt/models/m1', '/' + TAG, 'ro,nosuid,nodev'),
                                           ('/mnt/models/m2', '/' + TAG2, 'ro,nosuid,nodev')]
    fstab = domain.guest.files['/etc/fstab']
    assert fstab.count(base_line()) == 1
    assert fstab.endswith(base_line() + '\n' + bind_line() + '\n' + bind_line(TAG2, '/mnt/models/m2') + '\n')
    assert sorted(host.pinned(UUID)) == sorted([TAG, TAG2])
    assert domain.records()['m2']['device'] == DEVICE
    assert run_module(vm_model_mount, ARGS)['changed'] is False
    assert run_module(vm_model_mount, ARGS2)['changed'] is False


def test_twenty_models_share_one_device(domain, host, run_module):
    for index in range(20):
        host.dirs.add('%s/models/n%d' % (POINT, index))
        result = run_module(vm_model_mount, dict(ARGS, model='n%d' % index, source_path='models/n%d' % index))
        assert result['changed'] is True, result
    assert domain.live == [(DEVICE, VIEW)] and domain.config == [(DEVICE, VIEW)]
    assert [c for c in domain.calls if c[0] == 'attach'] == [('attach', True, True)]
    assert len(bases(domain)) == 1 and len(guest_targets(domain)) == 20
    fstab = domain.guest.files['/etc/fstab']
    assert fstab.count(base_line()) == 1 and fstab.count(' none bind,') == 20
    assert len(host.pinned(UUID)) == 20 and len(domain.records()) == 20
    assert run_module(vm_model_mount, dict(ARGS, model='n7', source_path='models/n7'))['changed'] is False


def test_ro_and_rw_models_get_two_devices(domain, host, run_module):
    host.dirs.add('/var/lib/aimodel/volumes/labvol/rw/models/m2')
    run_module(vm_model_mount, ARGS)
    result = run_module(vm_model_mount, dict(ARGS2, read_only=False))
    assert result['changed'] is True
    view_rw = _export.view_dir(UUID, 'rw')
    assert domain.live == [(DEVICE, VIEW), ('aimodel-rw', view_rw)] and domain.config == domain.live
    assert bases(domain) == [(DEVICE, BASE, 'ro,nosuid,nodev'), ('aimodel-rw', '/run/aimodel/rw', 'rw,nosuid,nodev')]
    assert domain.guest.model_mounts()[-1] == ('/mnt/models/m2', '/' + TAG2, 'rw,nosuid,nodev')
    assert host.pinned(UUID)[TAG2] == ('rw', 'models/m2', False)
    fstab = domain.guest.files['/etc/fstab']
    assert base_line() in fstab and base_line('aimodel-rw', False) in fstab
    assert bind_line(TAG2, '/mnt/models/m2', 'rw', False) in fstab
    assert domain.records()['m2']['device'] == 'aimodel-rw'


def test_a_cache_mode_gets_a_device_of_its_own(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    result = run_module(vm_model_mount, dict(ARGS2, cache='always'))
    assert result['changed'] is True
    assert [t for t, _s in domain.live] == [DEVICE, 'aimodel-ro-always']
    assert 'mount the shared device aimodel-ro-always at /run/aimodel/ro-always in the guest (ro)' in result['actions']
    assert domain.guest.model_mounts()[-1] == ('/mnt/models/m2', '/' + TAG2, 'ro,nosuid,nodev')
    assert domain.records()['m2']['device'] == 'aimodel-ro-always'


def test_read_write(domain, host, run_module):
    run_module(vm_model_mount, dict(ARGS, read_only=False))
    assert domain.live == [('aimodel-rw', _export.view_dir(UUID, 'rw'))]
    assert bases(domain) == [('aimodel-rw', '/run/aimodel/rw', 'rw,nosuid,nodev')]
    assert domain.guest.model_mounts() == [('/mnt/models/m1', '/' + TAG, 'rw,nosuid,nodev')]
    assert host.pinned(UUID) == {TAG: ('rw', 'models/m1', False)}
    assert host.mount_calls[0]['point'] == '/var/lib/aimodel/volumes/labvol/rw'


def test_changing_read_only_moves_the_model_to_the_other_device(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    result = run_module(vm_model_mount, dict(ARGS, read_only=False), diff=True)
    assert result['changed'] is True
    actions = result['actions']
    assert actions.index('unmount %s from /mnt/models/m1 in the guest (the model moves to the shared device aimodel-rw)'
                         % DEVICE) + 1 == actions.index('bind /run/aimodel/rw/%s at /mnt/models/m1 in the guest (rw)' % TAG)
    assert 'take %s out of the export tree %s' % (TAG, VIEW) in actions
    assert 'detach the shared device %s (live and persistent) and wait until the guest released it' % DEVICE in actions
    view_rw = _export.view_dir(UUID, 'rw')
    assert domain.live == [('aimodel-rw', view_rw)] and domain.config == domain.live
    assert bases(domain) == [('aimodel-rw', '/run/aimodel/rw', 'rw,nosuid,nodev')]
    assert domain.guest.model_mounts() == [('/mnt/models/m1', '/' + TAG, 'rw,nosuid,nodev')]
    assert host.pinned(UUID) == {TAG: ('rw', 'models/m1', False)}
    assert (UUID, 'ro') not in host.views and ('remove_view', 'ro') in host.calls
    fstab = domain.guest.files['/etc/fstab']
    assert DEVICE + ' ' not in fstab and BASE + '/' not in fstab
    assert fstab.endswith(base_line('aimodel-rw', False) + '\n' + bind_line(key='rw', read_only=False) + '\n')
    assert (result['diff']['before']['device'], result['diff']['after']['device']) == (DEVICE, 'aimodel-rw')
    assert run_module(vm_model_mount, dict(ARGS, read_only=False))['changed'] is False


def test_changing_read_only_keeps_the_device_of_other_models(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    run_module(vm_model_mount, ARGS2)
    result = run_module(vm_model_mount, dict(ARGS, read_only=False))
    assert result['changed'] is True
    assert not [a for a in result['actions'] if 'detach' in a or 'remove the export directory' in a]
    assert [t for t, _s in domain.live] == [DEVICE, 'aimodel-rw']
    assert [b[0] for b in bases(domain)] == [DEVICE, 'aimodel-rw']
    assert sorted(host.pinned(UUID).items()) == sorted({TAG: ('rw', 'models/m1', False),
                                                        TAG2: ('ro', 'models/m2', True)}.items())
    fstab = domain.guest.files['/etc/fstab']
    assert base_line() in fstab and bind_line(TAG2, '/mnt/models/m2') in fstab and bind_line() not in fstab


# --- converging a model --------------------------------------------------------------------------------

def test_converge_to_new_mount_path(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    result = run_module(vm_model_mount, dict(ARGS, mount_path='/srv/models/m1'), diff=True)
    assert result['changed'] is True
    assert result['diff']['before']['mount_path'] == '/mnt/models/m1'
    assert result['diff']['after']['mount_path'] == '/srv/models/m1'
    assert guest_targets(domain) == ['/srv/models/m1']
    assert len(domain.live) == 1 and len(domain.config) == 1 and len(bases(domain)) == 1
    assert len(pins(host)) == 1, 'the pin on the host stays'
    fstab = domain.guest.files['/etc/fstab']
    assert bind_line(mount_path='/srv/models/m1') in fstab and '/mnt/models/m1' not in fstab
    assert fstab.count(base_line()) == 1


def test_converge_to_new_source(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    result = run_module(vm_model_mount, dict(ARGS, source_path='models/m2'))
    assert result['changed'] is True
    assert 'pin again (stale) models/m2 of volume labvol into the export tree of the VM (%s/%s)' % (VIEW, TAG) \
        in result['actions']
    assert not [a for a in result['actions'] if 'attach' in a or 'detach' in a]
    assert domain.live == [(DEVICE, VIEW)] and domain.config == domain.live
    assert host.pinned(UUID) == {TAG: ('ro', 'models/m2', True)}
    assert guest_targets(domain) == ['/mnt/models/m1']
    assert run_module(vm_model_mount, dict(ARGS, source_path='models/m2'))['changed'] is False


def test_changing_read_ahead_does_not_remount(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    result = run_module(vm_model_mount, dict(ARGS, read_ahead_kb=4096))
    assert result['changed'] is True
    assert not [a for a in result['actions'] if a.startswith(('mount ', 'unmount ', 'attach', 'detach', 'bind', 'pin'))], \
        result['actions']
    assert guest_read_ahead(domain) == '4096\n' and domain.records()['m1']['read_ahead_kb'] == 4096
    assert domain.records(config=True)['m1']['read_ahead_kb'] == 4096


def test_persist_false_live_only(domain, host, run_module):
    result = run_module(vm_model_mount, dict(ARGS, persist=False))
    assert result['changed']
    assert domain.live and not domain.config
    assert TAG not in domain.guest.files['/etc/fstab'] and DEVICE not in domain.guest.files['/etc/fstab']
    assert 'm1' in domain.records() and domain.meta['config'] is None
    assert run_module(vm_model_mount, dict(ARGS, persist=False))['changed'] is False


def test_the_base_line_stays_while_a_persisted_model_uses_the_device(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    run_module(vm_model_mount, dict(ARGS2, persist=False))
    fstab = domain.guest.files['/etc/fstab']
    assert fstab.count(base_line()) == 1 and TAG2 not in fstab
    result = run_module(vm_model_mount, dict(ARGS, persist=False))
    assert result['changed'] is True
    assert DEVICE not in domain.guest.files['/etc/fstab'], 'no persisted model is left on the device'


# --- the stopped VM ------------------------------------------------------------------------------------

def start(domain):
    """Start the stopped fake VM: the persistent config becomes the live one, each device with a new virtiofsd."""
    domain.active = True
    domain.live = list(domain.config)
    domain.backends = dict((tag, 'boot.%d' % index) for index, (tag, _s) in enumerate(domain.live))
    domain.meta['live'] = domain.meta['config']


def test_stopped_vm_is_pending(domain, host, run_module):
    domain.active = False
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True
    assert result['mount']['status'] == 'pending'
    assert domain.config == [(DEVICE, VIEW)] and not domain.live
    assert ('attach', False, True) in domain.calls
    assert domain.records(config=True)['m1']['tag'] == TAG
    assert domain.records(config=True)['m1']['device'] == DEVICE
    assert domain.meta['live'] is None
    assert domain.guest.argvs == []
    assert run_module(vm_model_mount, ARGS)['changed'] is False


def test_stopped_then_started_completes(domain, host, run_module):
    domain.active = False
    run_module(vm_model_mount, ARGS)
    start(domain)
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True and result['mount']['status'] == 'mounted'
    assert [a for a in result['actions'] if 'attach' in a] == []
    assert guest_targets(domain) == ['/mnt/models/m1'] and len(bases(domain)) == 1
    assert run_module(vm_model_mount, ARGS)['changed'] is False


# --- absent --------------------------------------------------------------------------------------------

def test_absent_of_the_last_model_takes_the_device_away(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    result = run_module(vm_model_mount, ABSENT)
    assert result['changed'] is True, result
    assert result['actions'] == [
        'unmount m1 from /mnt/models/m1 in the guest',
        'remove the fstab lines of m1 in the guest',
        'take %s out of the export tree %s' % (TAG, VIEW),
        'unmount the shared device %s from %s in the guest' % (DEVICE, BASE),
        'detach the shared device %s (live and persistent) and wait until the guest released it' % DEVICE,
        'remove the export directory %s' % VIEW,
        'remove the record of m1 (live and persistent)',
    ]
    assert domain.live == [] and domain.config == []
    assert guest_targets(domain) == [] and bases(domain) == []
    assert TAG not in domain.guest.files['/etc/fstab'] and DEVICE not in domain.guest.files['/etc/fstab']
    assert domain.meta == {'live': None, 'config': None}
    assert host.binds == {} and host.views == set()
    assert host.calls[-2:] == [('unpin', 'ro', TAG), ('remove_view', 'ro')]
    again = run_module(vm_model_mount, ABSENT)
    assert again['changed'] is False and again['actions'] == []


def test_absent_of_a_model_that_is_not_the_last_keeps_the_device(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    run_module(vm_model_mount, ARGS2)
    calls = len(domain.calls)
    result = run_module(vm_model_mount, dict(ABSENT, model='m2'))
    assert result['changed'] is True
    assert result['actions'] == [
        'unmount m2 from /mnt/models/m2 in the guest',
        'remove the fstab lines of m2 in the guest',
        'take %s out of the export tree %s' % (TAG2, VIEW),
        'remove the record of m2 (live and persistent)',
    ]
    assert not [c for c in domain.calls[calls:] if c[0] in ('attach', 'detach')]
    assert domain.live == [(DEVICE, VIEW)] and domain.config == domain.live
    assert bases(domain) == [(DEVICE, BASE, 'ro,nosuid,nodev')] and guest_targets(domain) == ['/mnt/models/m1']
    fstab = domain.guest.files['/etc/fstab']
    assert fstab.endswith(base_line() + '\n' + bind_line() + '\n') and TAG2 not in fstab
    assert host.pinned(UUID) == {TAG: ('ro', 'models/m1', True)} and (UUID, 'ro') in host.views
    assert list(domain.records()) == ['m1']
    assert run_module(vm_model_mount, ARGS)['changed'] is False
    result = run_module(vm_model_mount, ABSENT)
    assert 'detach the shared device %s (live and persistent) and wait until the guest released it' % DEVICE \
        in result['actions']
    assert domain.live == [] and bases(domain) == [] and host.views == set()


def test_absent_busy_needs_force(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    domain.guest.busy.add('/mnt/models/m1')
    result = run_module(vm_model_mount, ABSENT)
    assert result['failed'] and 'busy' in result['msg']
    assert len(domain.live) == 1, 'never detach a device the guest still has mounted'
    assert host.pinned(UUID) == {TAG: ('ro', 'models/m1', True)}
    result = run_module(vm_model_mount, dict(ABSENT, force=True))
    assert result['changed'] and domain.live == [] and guest_targets(domain) == []
    assert 'unmount m1 from /mnt/models/m1 in the guest (lazily if busy)' in result['actions']


def test_absent_stopped_vm(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    domain.active = False
    domain.live = []
    result = run_module(vm_model_mount, ABSENT)
    assert result['changed'] is True
    assert domain.config == [] and domain.meta['config'] is None
    assert host.binds == {} and host.views == set()


def test_absent_missing_vm_is_ok(domain, host, run_module):
    result = run_module(vm_model_mount, {'vm': 'gone', 'model': 'm1', 'state': 'absent'})
    assert result['changed'] is False and result['mount']['status'] == 'absent'


def test_absent_guest_unreachable_needs_force(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    domain.guest.reachable = False
    before = snapshot(domain)
    result = run_module(vm_model_mount, ABSENT)
    assert result['failed'] and 'guest agent does not answer' in result['msg'] and 'nothing was changed' in result['msg']
    assert snapshot(domain) == before
    result = run_module(vm_model_mount, dict(ABSENT, force=True))
    assert result['changed'] is True and domain.live == [] and domain.meta == {'live': None, 'config': None}


@pytest.mark.parametrize('prepare', ['running', 'stopped'])
def test_check_mode_absent_and_stopped_change_nothing(domain, host, run_module, prepare):
    run_module(vm_model_mount, ARGS)
    if prepare == 'stopped':
        domain.active = False
        domain.live = []
    before = snapshot(domain)
    calls, host_calls = len(domain.calls), len(host.calls)
    result = run_module(vm_model_mount, ABSENT, check=True, diff=True)
    assert result['changed'] is True and result['actions']
    assert result['diff']['before']['model'] == 'm1' and result['diff']['after'] == {}
    assert snapshot(domain) == before and len(domain.calls) == calls and len(host.calls) == host_calls
    result = run_module(vm_model_mount, dict(ARGS, mount_path='/srv/other'), check=True)
    assert result['changed'] is True
    assert snapshot(domain) == before and len(domain.calls) == calls and len(host.calls) == host_calls


# --- the earlier layout: a device of the model's own -------------------------------------------------------

def legacy(domain, host):
    """Model m1 as the earlier layout left it: a record without ``device``, a virtiofs device of its own tagged with
    the record's tag (the model's directory in the volume as its source), a guest virtiofs mount of that tag at
    mount_path and its old fstab line; the host volume is mounted."""
    host.state[POINT] = 'mounted'
    host.mount_ids[POINT] = '42'
    rec = {'model': 'm1', 'volume': 'labvol', 'source_path': 'models/m1', 'mount_path': '/mnt/models/m1', 'tag': TAG,
           'read_only': True, 'persist': True, 'guest_mount': True, 'cache': 'auto', 'read_ahead_kb': 1024,
           'created': '2026-01-01T00:00:00Z', 'updated': '2026-01-01T00:00:00Z', 'verified': '1.2@42#9'}
    domain.meta['live'] = domain.meta['config'] = _record.render({'m1': rec})
    domain.attach(_libvirt.filesystem_xml(POINT + '/models/m1', TAG), True, True)
    guest_run(domain, ['mkdir', '-p', '/mnt/models/m1'])
    guest_run(domain, ['mount', '-t', 'virtiofs', '-o', 'ro', TAG, '/mnt/models/m1'])
    domain.guest.files['/etc/fstab'] += '%s /mnt/models/m1 virtiofs ro,nofail 0 0\n' % TAG
    domain.calls = []


def test_a_model_of_the_earlier_layout_is_converged_by_one_run(domain, host, run_module):
    legacy(domain, host)
    result = run_module(vm_model_mount, ARGS, diff=True)
    assert result['changed'] is True, result
    assert result['actions'] == [
        'pin models/m1 of volume labvol into the export tree of the VM (%s/%s)' % (VIEW, TAG),
        'attach the shared virtiofs device %s for %s (live and persistent)' % (DEVICE, VIEW),
        'mount the shared device %s at %s in the guest (ro)' % (DEVICE, BASE),
        'set the readahead of %s in the guest to 1024 KiB' % DEVICE,
        'write the fstab lines of m1 in the guest',
        'unmount %s from /mnt/models/m1 in the guest (the model moves to the shared device %s)' % (TAG, DEVICE),
        'bind %s/%s at /mnt/models/m1 in the guest (ro)' % (BASE, TAG),
        "detach the model's own device %s (live and persistent): the shared device %s serves it now" % (TAG, DEVICE),
        'write the record of m1 (live and persistent)',
    ]
    assert domain.live == [(DEVICE, VIEW)] and domain.config == domain.live
    assert ('detach', True, True) in domain.calls
    assert [(m['source'], m['target'], m['root']) for m in domain.guest.virtiofs_mounts()] == \
        [(DEVICE, BASE, '/'), (DEVICE, '/mnt/models/m1', '/' + TAG)]
    fstab = domain.guest.files['/etc/fstab']
    assert fstab == '# static\n/dev/vda /persist ext4 rw 0 0\n' + base_line() + '\n' + bind_line() + '\n'
    rec = domain.records()['m1']
    assert rec['device'] == DEVICE and rec['mount_root'] == '/var/lib/aimodel/volumes'
    assert domain.records(config=True)['m1']['device'] == DEVICE
    assert result['diff']['before']['device'] is None and result['diff']['after']['device'] == DEVICE
    assert host.pinned(UUID) == {TAG: ('ro', 'models/m1', True)}
    domain.guest.argvs = []
    again = run_module(vm_model_mount, ARGS)
    assert again['changed'] is False and again['actions'] == [], again
    assert domain.guest.argvs == []


def test_a_stopped_vm_of_the_earlier_layout_is_converged(domain, host, run_module):
    legacy(domain, host)
    domain.active = False
    domain.live = []
    domain.meta['live'] = None
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True and result['mount']['status'] == 'pending'
    assert domain.config == [(DEVICE, VIEW)]
    assert domain.records(config=True)['m1']['device'] == DEVICE
    assert run_module(vm_model_mount, ARGS)['changed'] is False


def test_absent_of_a_model_of_the_earlier_layout(domain, host, run_module):
    legacy(domain, host)
    result = run_module(vm_model_mount, ABSENT)
    assert result['changed'] is True
    assert result['actions'] == [
        'unmount m1 from /mnt/models/m1 in the guest',
        'remove the fstab lines of m1 in the guest',
        'detach device %s (live and persistent) and wait until the guest released it' % TAG,
        'remove the record of m1 (live and persistent)',
    ]
    assert domain.live == [] and domain.config == [] and domain.guest.virtiofs_mounts() == []
    assert TAG not in domain.guest.files['/etc/fstab']
    assert host.calls == [], 'nothing of it was pinned'


# --- healing -------------------------------------------------------------------------------------------

def test_dead_host_volume_is_remounted_and_the_model_bound_again_without_a_detach(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    host.state[POINT] = 'dead'
    domain.guest.stale.add('/mnt/models/m1')
    calls = len(domain.calls)
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True
    assert result['actions'] == [
        'remount the dead host volume labvol at %s' % POINT,
        'pin again (stale) models/m1 of volume labvol into the export tree of the VM (%s/%s)' % (VIEW, TAG),
        'unmount %s from /mnt/models/m1 in the guest (its directory was pinned again on the host)' % DEVICE,
        'bind %s/%s at /mnt/models/m1 in the guest (ro)' % (BASE, TAG),
        'write the record of m1 (live)',
    ]
    assert not [c for c in domain.calls[calls:] if c[0] in ('attach', 'detach')]
    assert host.state[POINT] == 'mounted' and host.unmounted == [POINT]
    assert host.entry_state(UUID, 'ro', TAG, POINT, 'models/m1') == 'pinned'
    assert guest_targets(domain) == ['/mnt/models/m1'] and domain.guest.answers('/mnt/models/m1')
    assert run_module(vm_model_mount, ARGS)['changed'] is False


@pytest.mark.parametrize('how', ['stale', 'dead'])
def test_a_stale_or_dead_pin_is_pinned_again_and_bound_again(domain, host, run_module, how):
    # stale: the model's directory was renamed or replaced in the volume since it was pinned; dead: the bind
    # does not answer although the volume mount does.
    run_module(vm_model_mount, ARGS)
    host.binds[(UUID, 'ro', TAG)]['state'] = how
    old_id = host.entry_id(UUID, 'ro', TAG)
    calls = len(domain.calls)
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True
    assert result['actions'] == [
        'pin again (%s) models/m1 of volume labvol into the export tree of the VM (%s/%s)' % (how, VIEW, TAG),
        'unmount %s from /mnt/models/m1 in the guest (its directory was pinned again on the host)' % DEVICE,
        'bind %s/%s at /mnt/models/m1 in the guest (ro)' % (BASE, TAG),
        'write the record of m1 (live)',
    ]
    assert not [c for c in domain.calls[calls:] if c[0] in ('attach', 'detach')]
    assert host.entry_id(UUID, 'ro', TAG) != old_id
    assert domain.records()['m1']['verified'].split('@')[1].split('#')[0] == host.entry_id(UUID, 'ro', TAG)
    assert run_module(vm_model_mount, ARGS)['changed'] is False


def test_an_entry_lost_on_the_host_is_pinned_again(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    host.unpin(UUID, 'ro', TAG)
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True
    assert result['actions'][0] == 'pin models/m1 of volume labvol into the export tree of the VM (%s/%s)' % (VIEW, TAG)
    assert 'bind %s/%s at /mnt/models/m1 in the guest (ro)' % (BASE, TAG) in result['actions']
    assert host.pinned(UUID) == {TAG: ('ro', 'models/m1', True)} and guest_targets(domain) == ['/mnt/models/m1']


def test_host_volume_mounted_again_makes_the_pin_stale(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    host.mount_ids[POINT] = '777'       # the volume was mounted again: the pin shows the old mount
    domain.guest.stale.add('/mnt/models/m1')
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True
    assert result['actions'][0].startswith('pin again (stale) models/m1')
    assert not [a for a in result['actions'] if 'attach' in a or 'detach' in a]
    assert guest_targets(domain) == ['/mnt/models/m1'] and domain.guest.answers('/mnt/models/m1')


def test_broken_guest_bind_is_bound_again(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    host.pin(UUID, 'ro', TAG, POINT, 'models/m1', True)     # pinned anew (the libvirt hook): a new data path
    domain.guest.stale.add('/mnt/models/m1')
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True
    assert result['actions'] == [
        'unmount %s from /mnt/models/m1 in the guest (broken or of the wrong access mode)' % DEVICE,
        'bind %s/%s at /mnt/models/m1 in the guest (ro)' % (BASE, TAG),
        'write the record of m1 (live)',
    ]
    assert guest_targets(domain) == ['/mnt/models/m1'] and domain.guest.answers('/mnt/models/m1')


def test_noop_probes_the_guest_mount_only_when_its_data_path_changed(domain, host, run_module):
    first = run_module(vm_model_mount, ARGS)
    assert first['changed'] is True
    assert domain.records()['m1']['verified'] and 'verified' not in first['mount']
    assert 'verified' not in domain.records(config=True)['m1'], 'the data path is live state, not config'
    domain.guest.argvs = []
    assert run_module(vm_model_mount, ARGS)['changed'] is False
    assert not [a for a in domain.guest.argvs if a[0] == 'stat'], 'unchanged data path: not probed again'
    # Once the data path changed (here: the model was pinned anew on the host), a no-op probes; while the probe
    # passes, nothing changes (and nothing is written).
    host.pin(UUID, 'ro', TAG, POINT, 'models/m1', True)
    before = snapshot(domain)
    assert run_module(vm_model_mount, ARGS)['changed'] is False
    assert [a for a in domain.guest.argvs if a[0] == 'stat']
    assert snapshot(domain) == before


def test_repair_refreshes_the_data_path_and_keeps_timestamps(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    created, updated = domain.records()['m1']['created'], domain.records()['m1']['updated']
    guest_run(domain, ['umount', '/mnt/models/m1'])    # by hand in the guest
    host.pin(UUID, 'ro', TAG, POINT, 'models/m1', True)
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True and any(a.startswith('bind ') for a in result['actions'])
    rec = domain.records()['m1']
    assert rec['verified'].split('@')[1].split('#')[0] == host.entry_id(UUID, 'ro', TAG)
    assert (rec['created'], rec['updated']) == (created, updated)


def test_guest_umount_of_the_base_by_hand_is_mounted_again(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    guest_run(domain, ['umount', '/mnt/models/m1'])
    guest_run(domain, ['umount', BASE])
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True
    assert 'mount the shared device %s at %s in the guest (ro)' % (DEVICE, BASE) in result['actions']
    assert len(domain.live) == 1, 'the live device is kept: libvirt would take a second one with the same tag'
    assert guest_targets(domain) == ['/mnt/models/m1'] and len(bases(domain)) == 1
    assert guest_read_ahead(domain) == '1024\n'


def test_device_detached_by_hand_leaves_dead_guest_mount(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    domain.live = []          # virsh detach-device --live: the guest keeps dead mounts
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True
    assert 'attach the shared virtiofs device %s for %s (live)' % (DEVICE, VIEW) in result['actions']
    assert ('attach', True, False) in domain.calls
    assert guest_targets(domain) == ['/mnt/models/m1'] and len(domain.live) == 1
    assert domain.guest.answers('/mnt/models/m1')


@pytest.mark.parametrize('how', ['detached by hand', 'attached anew by hand'])
def test_a_dead_base_mount_is_replaced(domain, host, run_module, how):
    run_module(vm_model_mount, ARGS)
    if how == 'detached by hand':
        domain.live = []
    else:
        domain.backends[DEVICE] = '9999.1'     # a new device with the same tag: a new virtiofsd
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True, result
    assert len(bases(domain)) == 1 and domain.guest.answers(BASE)
    assert guest_targets(domain) == ['/mnt/models/m1'] and domain.guest.answers('/mnt/models/m1')


@pytest.mark.parametrize('state', ['mounted', 'absent'])
def test_dead_virtiofsd_under_a_guest_mount_is_never_touched(domain, host, run_module, state):
    run_module(vm_model_mount, ARGS)
    domain.dead_backends.add(DEVICE)
    domain.guest.argvs = []
    before = snapshot(domain)
    args = ARGS if state == 'mounted' else dict(ABSENT, force=True)
    result = run_module(vm_model_mount, args)
    assert result['failed'] and 'Restart the VM' in result['msg'] and 'nothing was changed' in result['msg']
    assert 'virtiofsd process of device %s is gone' % DEVICE in result['msg']
    assert domain.guest.argvs == [], 'no guest process: it would hang on the dead mount'
    assert snapshot(domain) == before


def test_dead_virtiofsd_without_guest_mount_gets_a_new_device(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    guest_run(domain, ['umount', '/mnt/models/m1'])
    guest_run(domain, ['umount', BASE])
    domain.dead_backends.add(DEVICE)
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True
    actions = result['actions']
    assert actions.index('detach device %s, whose virtiofsd is gone (live)' % DEVICE) + 1 == \
        actions.index('attach the shared virtiofs device %s for %s (live)' % (DEVICE, VIEW))
    assert ('detach', True, False) in domain.calls and ('attach', True, False) in domain.calls
    assert len(domain.live) == 1 and len(domain.config) == 1
    assert guest_targets(domain) == ['/mnt/models/m1'] and domain.guest.answers('/mnt/models/m1')


def test_duplicate_live_tag_is_not_added(domain, host, run_module):
    """libvirt accepts a second live device with the same tag; the module must not."""
    run_module(vm_model_mount, ARGS)
    guest_run(domain, ['umount', '/mnt/models/m1'])
    guest_run(domain, ['umount', BASE])
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True
    assert len(domain.live) == 1 and guest_targets(domain) == ['/mnt/models/m1']


# --- readahead -------------------------------------------------------------------------------------------

def test_mount_sets_the_guest_readahead(domain, host, run_module):
    result = run_module(vm_model_mount, ARGS)
    assert 'set the readahead of %s in the guest to 1024 KiB' % DEVICE in result['actions']
    assert guest_read_ahead(domain) == '1024\n'
    assert result['mount']['read_ahead_kb'] == 1024 and domain.records()['m1']['read_ahead_kb'] == 1024


def test_read_ahead_zero_keeps_the_guest_default(domain, host, run_module):
    result = run_module(vm_model_mount, dict(ARGS, read_ahead_kb=0))
    assert not [a for a in result['actions'] if 'readahead' in a]
    assert guest_read_ahead(domain) == '128\n'
    assert run_module(vm_model_mount, dict(ARGS, read_ahead_kb=0))['changed'] is False


def test_the_readahead_of_a_device_is_the_largest_its_models_ask(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    result = run_module(vm_model_mount, dict(ARGS2, read_ahead_kb=4096))
    assert 'set the readahead of %s in the guest to 4096 KiB (was 1024 KiB)' % DEVICE in result['actions']
    assert guest_read_ahead(domain) == '4096\n'
    # m1 asks for less: the device keeps the larger value, and neither model is changed.
    assert run_module(vm_model_mount, ARGS)['changed'] is False
    assert run_module(vm_model_mount, dict(ARGS2, read_ahead_kb=4096))['changed'] is False
    result = run_module(vm_model_mount, dict(ARGS, read_ahead_kb=8192))
    assert result['actions'] == ['set the readahead of %s in the guest to 8192 KiB (was 4096 KiB)' % DEVICE,
                                 'write the record of m1 (live and persistent)']
    assert guest_read_ahead(domain) == '8192\n'


def test_guest_reboot_brings_the_readahead_back(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    # The guest rebooted: a new virtiofsd, and its fstab mounted the device's base and bound the model again (new
    # mounts, the kernel's default readahead).
    guest_run(domain, ['umount', '/mnt/models/m1'])
    guest_run(domain, ['umount', BASE])
    domain.backends[DEVICE] = 'boot.2'
    guest_run(domain, ['mount', '-t', 'virtiofs', '-o', 'ro,nosuid,nodev', DEVICE, BASE])
    guest_run(domain, ['mount', '-o', 'bind,ro,nosuid,nodev', '%s/%s' % (BASE, TAG), '/mnt/models/m1'])
    assert guest_read_ahead(domain) == '128\n'
    domain.guest.argvs = []
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True
    assert result['actions'] == ['set the readahead of %s in the guest to 1024 KiB (was 128 KiB)' % DEVICE,
                                 'write the record of m1 (live)']
    assert [a for a in domain.guest.argvs if a[0] == 'stat'], 'a new guest mount is probed'
    assert guest_read_ahead(domain) == '1024\n'
    domain.guest.argvs = []
    assert run_module(vm_model_mount, ARGS)['changed'] is False
    assert not domain.guest.argvs, 'then a no-op again: no guest process'


def reboot_without_base(domain):
    """The guest rebooted with the base line gone from its fstab but the model's bind line kept: systemd made the
    bind's missing source directory on the guest's /run (a tmpfs) and bound that empty directory at mount_path."""
    guest_run(domain, ['umount', '/mnt/models/m1'])
    guest_run(domain, ['umount', BASE])
    run = domain.guest.add_mount('tmpfs', '/run', 'tmpfs', 'rw,nosuid,nodev', dev='0:25')
    domain.guest.add_mount('tmpfs', '/mnt/models/m1', 'tmpfs', 'ro,nosuid,nodev', root='/aimodel/ro/' + TAG,
                           dev=run['dev'])
    domain.guest.files['/etc/fstab'] = domain.guest.files['/etc/fstab'].replace(base_line() + '\n', '')


def test_empty_bind_made_at_boot_without_the_base_is_replaced(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    reboot_without_base(domain)
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True, result
    assert 'unmount the empty bind at /mnt/models/m1 in the guest (the fstab made it at boot while the base mount ' \
        '%s was missing)' % BASE in result['actions']
    assert [m['fstype'] for m in domain.guest.mounts if m['target'] == '/mnt/models/m1'] == ['virtiofs']
    assert domain.guest.model_mounts() == [('/mnt/models/m1', '/' + TAG, 'ro,nosuid,nodev')]
    assert base_line() in domain.guest.files['/etc/fstab']
    assert run_module(vm_model_mount, ARGS)['changed'] is False


def test_unmount_takes_the_empty_bind_made_at_boot_away(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    reboot_without_base(domain)
    result = run_module(vm_model_mount, ABSENT)
    assert result['changed'] is True, result
    assert not [m for m in domain.guest.mounts if m['target'] == '/mnt/models/m1']
    assert TAG not in domain.guest.files['/etc/fstab']


@pytest.mark.parametrize('root', ['/', '/aimodel/ro/other', '/aimodel/ro/' + TAG + '/sub'])
def test_another_mount_at_the_mount_path_is_still_refused(domain, host, run_module, root):
    # The same file system as /run, but not the directory the model's fstab line binds: not ours.
    run = domain.guest.add_mount('tmpfs', '/run', 'tmpfs', 'rw,nosuid,nodev', dev='0:25')
    guest_run(domain, ['mkdir', '-p', '/mnt/models/m1'])
    domain.guest.add_mount('tmpfs', '/mnt/models/m1', 'tmpfs', 'rw', root=root, dev=run['dev'])
    before = snapshot(domain)
    result = run_module(vm_model_mount, ARGS)
    assert result['failed']
    assert '/mnt/models/m1 is already a mount point in the guest (tmpfs, tmpfs), not of model m1' in result['msg']
    assert snapshot(domain) == before


def test_a_tmpfs_of_its_own_at_the_mount_path_is_refused(domain, host, run_module):
    # A file system of its own (another device) whose root happens to look like the model's source: not ours.
    domain.guest.add_mount('tmpfs', '/run', 'tmpfs', 'rw,nosuid,nodev', dev='0:25')
    guest_run(domain, ['mkdir', '-p', '/mnt/models/m1'])
    domain.guest.add_mount('tmpfs', '/mnt/models/m1', 'tmpfs', 'rw', root='/aimodel/ro/' + TAG, dev='0:26')
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and 'is already a mount point in the guest' in result['msg']


def test_locked_down_agent_mounts_with_guest_processes_only(domain, host, run_module):
    # An agent without the guest-file-* commands: reads with cat, the readahead with a constant script.
    domain.guest.no_file_ops = True
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True, result
    assert guest_targets(domain) == ['/mnt/models/m1'] and guest_read_ahead(domain) == '1024\n'
    assert ['head', '-c', str(_guest.MAX_FILE_BYTES + 1), '/proc/self/mountinfo'] in domain.guest.argvs
    assert [a for a in domain.guest.argvs if a[:3] == ['sh', '-c', _guest.WRITE_VALUE_SCRIPT]]
    assert run_module(vm_model_mount, ARGS)['changed'] is False


def test_absent_of_an_unrecorded_model_whose_tag_collides_touches_nothing(domain, host, run_module, monkeypatch):
    # Tags are no identities: a model without a record whose name derives the tag of another model, here one of
    # the earlier layout (a device carrying that tag, a guest mount and an fstab line of it).
    legacy(domain, host)
    before = snapshot(domain)
    real = _spec.derive_tag
    monkeypatch.setattr(_spec, 'derive_tag', lambda model: TAG if model == 'collides' else real(model))
    result = run_module(vm_model_mount, dict(ABSENT, model='collides'))
    assert result['changed'] is False and result['actions'] == [], result
    assert snapshot(domain) == before
    assert domain.guest.answers('/mnt/models/m1')


def test_a_model_recorded_with_a_shorter_tag_keeps_it(domain, host, run_module, monkeypatch):
    # Recorded by a release whose tags had a shorter hash: its entry in the export tree keeps its name.
    real = _spec.derive_tag
    monkeypatch.setattr(_spec, 'derive_tag', lambda model: 'aim-m1-0123abcd' if model == 'm1' else real(model))
    assert run_module(vm_model_mount, ARGS)['mount']['tag'] == 'aim-m1-0123abcd'
    monkeypatch.setattr(_spec, 'derive_tag', real)
    again = run_module(vm_model_mount, ARGS)
    assert again['changed'] is False and again['mount']['tag'] == 'aim-m1-0123abcd', again
    assert guest_targets(domain) == ['/mnt/models/m1'] and domain.guest.answers('/mnt/models/m1')


def test_absent_of_an_unrecorded_model_finds_the_device_the_earlier_release_tagged(domain, host, run_module):
    # An orphan of the earlier release: a device of the model's own, tagged with the 8-digit hash, no record.
    old_tag = _spec.legacy_tag('m1')
    assert old_tag != TAG and len(old_tag.rsplit('-', 1)[1]) == 8
    xml = _libvirt.filesystem_xml(POINT + '/models/m1', old_tag)
    domain.attach(xml, True, True)
    result = run_module(vm_model_mount, ABSENT)
    assert result['changed'] is True, result
    assert result['actions'] == ['detach device %s (live and persistent) and wait until the guest released it' % old_tag]
    assert domain.live == [] and domain.config == []


# --- the volume's identity -----------------------------------------------------------------------------

OTHER_UUID = '9d6b2f7e-0c4a-4d1e-8f3b-2a1c0e9d8b7a'
OTHER_URL = 'redis://127.0.0.1:16380/1'


def test_a_mounted_volume_of_the_same_name_from_another_engine_is_refused(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    host.engines[OTHER_URL] = ('labvol', OTHER_UUID)
    before = snapshot(domain)
    result = run_module(vm_model_mount, dict(ARGS2, volume={'name': 'labvol', 'meta_url': OTHER_URL}))
    assert result['failed'] and result['field'] == 'volume.meta_url'
    assert FAKE_IDENTITY[1] in result['msg'] and OTHER_UUID in result['msg'] and OTHER_URL in result['msg']
    assert 'nothing was changed' in result['msg']
    assert snapshot(domain) == before


def test_a_host_mount_of_another_volume_of_that_name_is_not_served(domain, host, run_module):
    host.state[POINT] = 'mounted'
    host.identities[POINT] = ('labvol', OTHER_UUID)
    before = snapshot(domain)
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and result['field'] == 'volume.meta_url' and OTHER_UUID in result['msg']
    assert snapshot(domain) == before and host.calls == [] and host.mount_calls == []


def test_an_engine_that_cannot_say_which_volume_it_holds_fails_before_any_change(domain, host, run_module):
    host.state[POINT] = 'mounted'
    host.engines['redis://127.0.0.1:16379/1'] = _juicefs.VolumeError(
        'volume.meta_url: the metadata engine at 127.0.0.1:16379 does not accept connections (refused)')
    before = snapshot(domain)
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and result['field'] == 'volume.meta_url' and 'does not accept' in result['msg']
    assert 's3cr3t-pw' not in json.dumps(result)
    assert snapshot(domain) == before and host.calls == []


def test_an_engine_holding_a_volume_of_another_name_is_refused(domain, host, run_module):
    host.engines['redis://127.0.0.1:16379/1'] = ('models', FAKE_IDENTITY[1])
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and result['field'] == 'volume.name'
    assert 'holds volume models, not labvol' in result['msg']
    assert host.mount_calls == [] and domain.live == []


def test_a_volume_mounted_as_another_identity_is_rolled_back(domain, host, run_module):
    # Between the plan and the mount, the engine's URL came to serve another volume of the same name.
    host.identities[POINT] = ('labvol', OTHER_UUID)
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and OTHER_UUID in result['msg'] and FAKE_IDENTITY[1] in result['msg']
    assert domain.live == [] and domain.config == [] and host.calls == []


def test_the_record_keeps_the_identity_and_a_rerun_needs_no_engine(domain, host, run_module):
    first = run_module(vm_model_mount, ARGS)
    assert first['mount']['volume_uuid'] == FAKE_IDENTITY[1]
    assert first['mount']['meta_url'] == 'redis://127.0.0.1:16379/1'
    assert host.engine_calls == ['redis://127.0.0.1:16379/1']
    host.engines['redis://127.0.0.1:16379/1'] = _juicefs.VolumeError('engine down')
    assert run_module(vm_model_mount, ARGS)['changed'] is False, 'the record proves the mount is that volume'
    # Another URL of the same engine: asked, and the record names it from now on.
    host.engines['redis://127.0.0.1:16379/1?x=1'] = FAKE_IDENTITY
    moved = run_module(vm_model_mount, dict(ARGS, volume={'name': 'labvol', 'meta_url': 'redis://127.0.0.1:16379/1?x=1'}))
    assert moved['changed'] is True and moved['actions'] == ['write the record of m1 (live and persistent)']
    assert moved['mount']['meta_url'] == 'redis://127.0.0.1:16379/1?x=1'


def test_a_record_of_an_earlier_release_gains_the_identity(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    for config in (False, True):
        assert domain.records(config)['m1']['volume_uuid'] == FAKE_IDENTITY[1]
        old = dict((k, v) for k, v in domain.records(config)['m1'].items() if k not in ('volume_uuid', 'meta_url'))
        domain.meta['config' if config else 'live'] = _record.render({'m1': old})
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True and result['actions'] == ['write the record of m1 (live and persistent)']
    assert run_module(vm_model_mount, ARGS)['changed'] is False


# --- a slow volume is not a dead one -------------------------------------------------------------------

@pytest.mark.parametrize('args', [ARGS, ARGS2])
def test_a_slow_volume_is_never_remounted(domain, host, run_module, args):
    run_module(vm_model_mount, ARGS)
    host.state[POINT] = 'slow'
    before = snapshot(domain)
    result = run_module(vm_model_mount, args)
    assert result['failed'] and 'slow or hung' in result['msg'] and 'not remounted' in result['msg']
    assert snapshot(domain) == before and host.unmounted == [] and len(host.mount_calls) == 1


# --- a step that fails half-way ------------------------------------------------------------------------

def test_a_record_written_live_but_not_persistently_is_restored(domain, host, run_module, monkeypatch):
    run_module(vm_model_mount, ARGS)
    before = copy.deepcopy(domain.meta)
    real = domain.set_metadata

    def live_only(xml_text, live, config):
        if config:
            raise _libvirt.VirtError('cannot write the persistent metadata: injected', 1)
        real(xml_text, live, config)
    monkeypatch.setattr(domain, 'set_metadata', live_only)
    result = run_module(vm_model_mount, dict(ARGS, read_ahead_kb=2048))
    assert result['failed'] and 'write the record of m1 (live and persistent) failed' in result['msg']
    assert 'restored the previous record' in result['msg'] and 'NOT rolled back' not in result['msg']
    monkeypatch.setattr(domain, 'set_metadata', real)
    assert domain.meta == before, 'the live record is the one before the run again'


def test_an_attach_done_live_but_not_confirmed_persistently_is_detached(domain, host, run_module, monkeypatch):
    real = domain.attach
    monkeypatch.setattr(domain, 'attach', lambda device_xml, live, config: real(device_xml, live, False))
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and 'is not in the persistent XML after attaching it' in result['msg']
    assert 'detached device %s (live and persistent)' % DEVICE in result['msg']
    assert 'NOT rolled back' not in result['msg']
    assert domain.live == [] and domain.config == [] and domain.calls[-1][0] == 'detach'
    assert domain.calls[-1][1:] == (True, False), 'only what is attached is detached'


def stray_bind(host, entry, key='ro'):
    """A bind in the VM's export tree that no record names, as a run that crashed after its pin leaves."""
    host.state[POINT] = 'mounted'
    host.binds[(UUID, key, entry)] = {'point': POINT, 'source_path': 'models/m1', 'read_only': True, 'id': 900,
                                      'volume': host.mount_id(POINT)}
    host.views.add((UUID, key))


@pytest.mark.parametrize('which', ['derived', 'legacy'])
def test_absent_of_an_unrecorded_model_takes_its_stray_bind_and_the_empty_view_away(domain, host, run_module, which):
    entry = TAG if which == 'derived' else _spec.legacy_tag('m1')
    stray_bind(host, entry)
    result = run_module(vm_model_mount, ABSENT)
    assert result['changed'] is True, result
    assert result['actions'] == ['take %s out of the export tree %s (no record names it)' % (entry, VIEW),
                                 'remove the export directory %s' % VIEW]
    assert host.binds == {} and host.views == set()
    again = run_module(vm_model_mount, ABSENT)
    assert again['changed'] is False and again['actions'] == []


def test_absent_of_an_unrecorded_model_keeps_the_view_other_models_use(domain, host, run_module):
    run_module(vm_model_mount, ARGS2)
    stray_bind(host, TAG)
    before = snapshot(domain)
    result = run_module(vm_model_mount, ABSENT)
    assert result['actions'] == ['take %s out of the export tree %s (no record names it)' % (TAG, VIEW)], result
    assert host.pinned(UUID) == {TAG2: ('ro', 'models/m2', True)} and (UUID, 'ro') in host.views
    assert (domain.live, domain.config, domain.meta, domain.guest.mounts, domain.guest.files) == before[:5]


def test_absent_of_an_unrecorded_model_keeps_the_view_a_device_serves(domain, host, run_module):
    # The device of the view is attached (no model recorded on it): its virtiofsd serves the view, which stays.
    domain.attach(_libvirt.filesystem_xml(VIEW, DEVICE), True, True)
    stray_bind(host, TAG)
    result = run_module(vm_model_mount, ABSENT)
    assert result['actions'] == ['take %s out of the export tree %s (no record names it)' % (TAG, VIEW)], result
    assert host.binds == {} and host.views == set([(UUID, 'ro')])


@pytest.mark.parametrize('which', ['derived', 'legacy'])
def test_absent_of_an_unrecorded_model_whose_tag_another_record_names_keeps_its_bind(
        domain, host, run_module, monkeypatch, which):
    # m2 is recorded on the shared device with the tag that 'collides' derives (or that an earlier release derived
    # for it): its bind, guest mount, fstab line and device are m2's.
    name = 'derive_tag' if which == 'derived' else 'legacy_tag'
    real = getattr(_spec, name)
    run_module(vm_model_mount, ARGS2)
    monkeypatch.setattr(_spec, name, lambda model: TAG2 if model == 'collides' else real(model))
    before = snapshot(domain)
    result = run_module(vm_model_mount, dict(ABSENT, model='collides'))
    assert result['changed'] is False and result['actions'] == [], result
    assert snapshot(domain) == before
    assert host.pinned(UUID) == {TAG2: ('ro', 'models/m2', True)}
    assert domain.guest.answers('/mnt/models/m2')


# --- guests that refuse commands, hot-plug slots, other guest facts --------------------------------------------

@pytest.mark.parametrize('check', [False, True])
def test_an_agent_locked_down_like_rhel8_fails_before_any_change_and_says_how_to_allow(domain, host, run_module, check):
    domain.guest.disabled.update(RHEL8_BLOCKED)
    before = snapshot(domain)
    result = run_module(vm_model_mount, ARGS, check=check)
    assert result['failed'], result
    msg = result['msg']
    assert 'has disabled guest-exec, guest-exec-status, guest-file-close, guest-file-open, guest-file-read' in msg
    assert '/etc/sysconfig/qemu-ga' in msg and 'BLACKLIST_RPC' in msg and 'FILTER_RPC_ARGS' in msg
    assert 'guest_mount: false' in msg and 'nothing was changed' in msg
    assert 'does not answer' not in msg and 'is qemu-guest-agent running' not in msg
    assert snapshot(domain) == before and host.calls == [] and host.mount_calls == []
    assert domain.guest.argvs == []


def test_an_agent_that_reads_files_but_runs_no_command_fails_before_any_change(domain, host, run_module):
    domain.guest.disabled.update(['guest-exec', 'guest-exec-status'])
    before = snapshot(domain)
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and 'has disabled guest-exec, guest-exec-status' in result['msg'], result
    assert 'mounting model m1 in the guest' in result['msg']
    assert snapshot(domain) == before and host.calls == [] and host.mount_calls == []


def test_a_plan_with_guest_steps_on_an_agent_that_runs_no_command_fails_before_any_change(domain, host, run_module):
    # guest_mount: false, but the model is bound in the guest from an earlier run: taking it out needs guest-exec.
    run_module(vm_model_mount, ARGS)
    domain.guest.disabled.update(['guest-exec', 'guest-exec-status'])
    before = snapshot(domain)
    result = run_module(vm_model_mount, dict(ARGS, guest_mount=False))
    assert result['failed'] and 'nothing was changed' in result['msg'], result
    assert 'has disabled guest-exec, guest-exec-status' in result['msg']
    assert snapshot(domain) == before


def test_guest_mount_false_serves_a_locked_down_guest_without_touching_it(domain, host, run_module):
    domain.guest.disabled.update(RHEL8_BLOCKED)
    result = run_module(vm_model_mount, dict(ARGS, guest_mount=False))
    assert result['changed'] is True and result['mount']['status'] == 'mounted', result
    assert not [a for a in result['actions'] if 'in the guest' in a]
    assert domain.live == [(DEVICE, VIEW)] and host.pinned(UUID) == {TAG: ('ro', 'models/m1', True)}
    assert domain.guest.argvs == [] and guest_targets(domain) == []
    assert run_module(vm_model_mount, dict(ARGS, guest_mount=False))['changed'] is False
    # Taking it out: the guest's owner may use the device, which cannot be checked; with force it is detached.
    result = run_module(vm_model_mount, ABSENT)
    assert result['failed'] and 'refuses the commands that read the guest' in result['msg'], result
    assert 'force: true' in result['msg'] and domain.live == [(DEVICE, VIEW)]
    result = run_module(vm_model_mount, dict(ABSENT, force=True))
    assert result['changed'] is True and domain.live == [] and host.binds == {}, result
    assert domain.guest.argvs == []


def test_a_frozen_guest_fails_before_any_change_and_says_to_thaw(domain, host, run_module):
    domain.guest.frozen = True
    before = snapshot(domain)
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and 'frozen' in result['msg'] and 'domfsthaw' in result['msg'], result
    assert 'BLACKLIST_RPC' not in result['msg'] and 'nothing was changed' in result['msg']
    assert snapshot(domain) == before and host.calls == []


def test_a_q35_vm_without_a_free_root_port_fails_before_any_change(domain, host, run_module):
    domain.root_ports = 2            # both taken by the VM's own devices
    before = snapshot(domain)
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and 'no free hot-plug slot' in result['msg'], result
    assert "<controller type='pci' model='pcie-root-port'/>" in result['msg'] and 'restart the VM' in result['msg']
    assert 'nothing was changed' in result['msg']
    assert snapshot(domain) == before and host.calls == [] and host.mount_calls == [] and domain.guest.argvs == []


def test_a_q35_vm_needs_a_free_root_port_for_its_first_model_only(domain, host, run_module):
    domain.root_ports = 3            # one free port
    assert run_module(vm_model_mount, ARGS)['changed'] is True
    assert domain.free_ports() == 0
    result = run_module(vm_model_mount, ARGS2)
    assert result['changed'] is True and 'attach' not in ' '.join(result['actions']), result
    assert guest_targets(domain) == ['/mnt/models/m1', '/mnt/models/m2']


def test_libvirt_out_of_pci_slots_is_explained_and_rolled_back(domain, host, run_module, monkeypatch):
    # A machine type whose slots cannot be told from its XML: libvirt's refusal gets the same advice.
    monkeypatch.setattr(_libvirt, 'free_hotplug_slots', lambda xml: None)
    domain.root_ports = 2
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and 'No more available PCI slots' in result['msg'], result
    assert 'no free hot-plug slot' in result['msg'] and "model='pcie-root-port'" in result['msg']
    assert 'NOT rolled back' not in result['msg'] and host.binds == {} and domain.live == []
    assert domain.guest.dirs == GUEST_DIRS


def test_a_guest_kernel_without_virtiofs_is_a_clear_error_and_rolled_back(domain, host, run_module):
    domain.guest.kernel_virtiofs = False
    before = snapshot(domain)
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and 'has no virtiofs file system' in result['msg'], result
    assert 'NOT rolled back' not in result['msg']
    assert domain.live == [] and domain.config == [] and host.binds == {} and domain.meta == before[2]
    assert domain.guest.files == before[4] and domain.guest.dirs - BASE_DIRS == GUEST_DIRS
    assert [a for a in domain.guest.argvs if a[:2] == ['mount', '-t']] == [
        ['mount', '-t', 'virtiofs', '-o', 'ro,nosuid,nodev', DEVICE, BASE]], 'no retries'


def test_an_fstab_on_a_read_only_root_is_a_clear_error_and_rolled_back(domain, host, run_module):
    domain.guest.read_only_files.add('/etc/fstab')
    before = snapshot(domain)
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and 'read-only file system in the guest' in result['msg'], result
    assert 'persist: false' in result['msg'] and 'NOT rolled back' not in result['msg']
    assert domain.live == [] and host.binds == {} and domain.meta == before[2] and bases(domain) == []
    # persist: false needs no fstab line.
    result = run_module(vm_model_mount, dict(ARGS, persist=False))
    assert result['changed'] is True and guest_targets(domain) == ['/mnt/models/m1'], result


def test_a_dead_virtiofsd_is_not_replaced_under_a_guest_whose_mounts_cannot_be_read(domain, host, run_module):
    run_module(vm_model_mount, dict(ARGS, guest_mount=False))
    domain.dead_backends.add(DEVICE)
    domain.guest.disabled.update(RHEL8_BLOCKED)
    before = snapshot(domain)
    result = run_module(vm_model_mount, dict(ARGS, guest_mount=False))
    assert result['failed'] and 'may still mount it' in result['msg'] and 'nothing was changed' in result['msg'], result
    assert snapshot(domain) == before


# --- state: detached (the record kept, before a migration) -----------------------------------------------

DETACHED = dict(ABSENT, state='detached')


def test_detached_takes_the_models_out_and_keeps_the_records(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    run_module(vm_model_mount, ARGS2)
    first = run_module(vm_model_mount, DETACHED)
    assert first['changed'] is True and first['mount']['status'] == 'detached', first
    assert first['actions'][-1] == 'mark the record of m1 detached (live and persistent)'
    assert domain.live == [(DEVICE, VIEW)], 'm2 still uses the shared device'
    result = run_module(vm_model_mount, dict(DETACHED, model='m2'))
    assert 'detach the shared device %s (live and persistent) and wait until the guest released it' % DEVICE \
        in result['actions'], 'a detached model does not keep the device'
    assert domain.live == [] and domain.config == [] and guest_targets(domain) == [] and bases(domain) == []
    assert host.binds == {} and host.views == set()
    fstab = domain.guest.files['/etc/fstab']
    assert TAG not in fstab and TAG2 not in fstab and DEVICE not in fstab
    for config in (False, True):
        records = domain.records(config=config)
        assert sorted(records) == ['m1', 'm2'] and all(r['detached'] == 'true' for r in records.values())
        assert records['m1']['source_path'] == 'models/m1' and records['m1']['tag'] == TAG
    again = run_module(vm_model_mount, DETACHED)
    assert again['changed'] is False and again['actions'] == [] and again['mount']['status'] == 'detached'


def test_mounted_from_a_detached_record_brings_the_model_back_with_its_tag(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    created = domain.records()['m1']['created']
    run_module(vm_model_mount, DETACHED)
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True and result['mount']['status'] == 'mounted', result
    assert domain.live == [(DEVICE, VIEW)] and guest_targets(domain) == ['/mnt/models/m1']
    assert host.pinned(UUID) == {TAG: ('ro', 'models/m1', True)}
    for config in (False, True):
        rec = domain.records(config=config)['m1']
        assert 'detached' not in rec and rec['tag'] == TAG
    assert created <= domain.records()['m1']['created']
    assert run_module(vm_model_mount, ARGS)['changed'] is False


def test_detached_of_a_busy_mount_needs_force_and_absent_removes_a_detached_record(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    domain.guest.busy.add('/mnt/models/m1')
    result = run_module(vm_model_mount, DETACHED)
    assert result['failed'] and 'busy' in result['msg']
    assert len(domain.live) == 1 and 'detached' not in domain.records()['m1']
    result = run_module(vm_model_mount, dict(DETACHED, force=True))
    assert result['changed'] and domain.live == [] and domain.records()['m1']['detached'] == 'true'
    result = run_module(vm_model_mount, ABSENT)
    assert result['changed'] and domain.meta == {'live': None, 'config': None}


def test_detached_without_a_record_is_nothing_to_do(domain, host, run_module):
    result = run_module(vm_model_mount, DETACHED)
    assert result['changed'] is False and result['actions'] == [] and result['mount']['status'] == 'absent'
