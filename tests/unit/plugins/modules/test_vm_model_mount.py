# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import copy
import json

import pytest

from ansible_collections.aimodel.kvm.plugins.module_utils import _spec
from ansible_collections.aimodel.kvm.plugins.modules import vm_model_mount

TAG = _spec.derive_tag('m1')
ARGS = {
    'vm': 'vm1',
    'model': 'm1',
    'source_path': 'models/m1',
    'volume': {'name': 'labvol', 'meta_url': 'redis://:s3cr3t-pw@127.0.0.1:16379/1'},
}


def snapshot(dom):
    return copy.deepcopy((dom.live, dom.config, dom.meta, dom.guest.mounts, dom.guest.files))


def guest_targets(dom):
    return [m[1] for m in dom.guest.mounts if m[2] == 'virtiofs']


def test_mount_running_vm(domain, host, run_module):
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True, result
    assert result['mount']['status'] == 'mounted'
    assert result['mount']['mount_path'] == '/mnt/models/m1'
    assert domain.live == [(TAG, '/var/lib/aimodel/volumes/labvol/ro/models/m1')]
    assert domain.config == domain.live
    assert ('attach', True, True) in domain.calls, 'live and persistent in one call'
    assert (TAG, '/mnt/models/m1', 'virtiofs', 'ro') in [m[:4] for m in domain.guest.mounts]
    assert '%s /mnt/models/m1 virtiofs ro,nofail 0 0' % TAG in domain.guest.files['/etc/fstab']
    assert '/dev/vda /persist ext4' in domain.guest.files['/etc/fstab'], 'other fstab lines are kept'
    assert domain.records()['m1']['source_path'] == 'models/m1'
    assert domain.records(config=True)['m1']['mount_path'] == '/mnt/models/m1'
    # The host volume was mounted once, read-only, the password kept out of the URL.
    assert host.mount_calls == [{'volume': 'labvol', 'meta_url': 'redis://127.0.0.1:16379/1', 'password': 's3cr3t-pw',
                                 'point': '/var/lib/aimodel/volumes/labvol/ro'}]


def test_second_run_changes_nothing(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    before = snapshot(domain)
    calls = len(domain.calls)
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is False, result
    assert result['actions'] == []
    assert snapshot(domain) == before
    assert len(domain.calls) == calls


def test_check_mode_changes_nothing(domain, host, run_module):
    before = snapshot(domain)
    result = run_module(vm_model_mount, ARGS, check=True)
    assert result['changed'] is True
    assert any('attach' in a for a in result['actions'])
    assert snapshot(domain) == before
    assert host.mount_calls == []


def test_diff_shows_record(domain, host, run_module):
    result = run_module(vm_model_mount, ARGS, diff=True)
    assert result['diff']['before'] == {}
    assert result['diff']['after']['mount_path'] == '/mnt/models/m1'
    assert 'meta_url' not in result['diff']['after']


@pytest.mark.parametrize('variant', ['/mnt/models/./m1', '/mnt/models//m1/', '/mnt//models/m1/.'])
def test_normalized_mount_path_is_one_mount(domain, host, run_module, variant):
    run_module(vm_model_mount, dict(ARGS, mount_path='/mnt/models/m1'))
    result = run_module(vm_model_mount, dict(ARGS, mount_path=variant))
    assert result['changed'] is False, result
    assert len(domain.live) == 1
    assert domain.records()['m1']['mount_path'] == '/mnt/models/m1'


def test_other_model_at_same_path_fails(domain, host, run_module):
    run_module(vm_model_mount, dict(ARGS, mount_path='/srv/m'))
    before = snapshot(domain)
    result = run_module(vm_model_mount, dict(ARGS, model='m2', source_path='models/m2', mount_path='/srv/m/'))
    assert result['failed']
    assert 'm1' in result['msg'] and 'm2' in result['msg'] and '/srv/m' in result['msg']
    assert snapshot(domain) == before


def test_foreign_guest_mount_at_path_fails(domain, host, run_module):
    domain.guest.mounts.append(('/dev/vdb', '/mnt/models/m1', 'ext4', 'rw'))
    before = snapshot(domain)
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and '/dev/vdb' in result['msg']
    assert snapshot(domain) == before


def test_converge_to_new_mount_path(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    result = run_module(vm_model_mount, dict(ARGS, mount_path='/srv/models/m1'), diff=True)
    assert result['changed'] is True
    assert result['diff']['before']['mount_path'] == '/mnt/models/m1'
    assert result['diff']['after']['mount_path'] == '/srv/models/m1'
    assert guest_targets(domain) == ['/srv/models/m1']
    assert len(domain.live) == 1 and len(domain.config) == 1
    fstab = domain.guest.files['/etc/fstab']
    assert '/srv/models/m1' in fstab and '/mnt/models/m1' not in fstab


def test_converge_to_new_source(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    result = run_module(vm_model_mount, dict(ARGS, source_path='models/m2'))
    assert result['changed'] is True
    assert domain.live == [(TAG, '/var/lib/aimodel/volumes/labvol/ro/models/m2')]
    assert domain.config == domain.live
    assert guest_targets(domain) == ['/mnt/models/m1']


def test_guest_mount_failure_rolls_back(domain, host, run_module):
    domain.guest.fail_mount = 'Permission denied'
    before = snapshot(domain)
    result = run_module(vm_model_mount, ARGS)
    assert result['failed']
    assert 'Rolled back' in result['msg'] and 'detached device' in result['msg']
    assert domain.live == [] and domain.config == []
    assert domain.meta == before[2]
    assert domain.guest.files == before[4]


def test_fstab_write_failure_rolls_back(domain, host, run_module):
    # The fstab line is written between the attach and the guest mount (while the guest discovers the device).
    domain.guest.read_only_files.add('/etc/fstab')
    before = snapshot(domain)
    result = run_module(vm_model_mount, dict(ARGS, mount_path='/mnt/new/m1'))
    assert result['failed']
    assert 'write the fstab line' in result['msg'] and 'Read-only file system' in result['msg']
    assert 'detached device' in result['msg'] and 'NOT rolled back' not in result['msg']
    assert domain.live == [] and domain.config == []
    assert domain.meta == before[2]
    assert domain.guest.files == before[4]
    assert guest_targets(domain) == []
    assert domain.guest.dirs == set(['/mnt', '/persist', '/etc'])


def test_record_failure_rolls_back_every_step(domain, host, run_module):
    # The record is written last: its failure undoes the guest mount, the fstab line, the device and the
    # mount point, in that order.
    domain.fail_metadata = 1
    before = snapshot(domain)
    result = run_module(vm_model_mount, dict(ARGS, mount_path='/mnt/new/m1'))
    assert result['failed'] and 'write the record of m1' in result['msg']
    rolled = result['msg'].split('Rolled back: ')[1]
    assert rolled.index('unmounted') < rolled.index('restored the guest fstab') < rolled.index('detached device') \
        < rolled.index('removed the directories')
    assert 'NOT rolled back' not in result['msg']
    assert snapshot(domain) == before
    assert domain.guest.dirs == set(['/mnt', '/persist', '/etc'])


def test_missing_source_fails_before_change(domain, host, run_module):
    host.state['/var/lib/aimodel/volumes/labvol/ro'] = 'mounted'
    before = snapshot(domain)
    result = run_module(vm_model_mount, dict(ARGS, source_path='models/nope'))
    assert result['failed']
    assert 'model m1 not found at models/nope in volume labvol' in result['msg']
    assert snapshot(domain) == before


def test_no_shared_memory(domain, host, run_module):
    domain.shared_memory = False
    result = run_module(vm_model_mount, ARGS)
    assert result['failed']
    assert "<access mode='shared'/>" in result['msg'] and 'restart' in result['msg']
    assert domain.calls == []


def test_guest_unreachable_fails_before_change(domain, host, run_module):
    domain.guest.reachable = False
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and 'guest agent' in result['msg']
    assert domain.live == [] and domain.meta['live'] is None


def test_stopped_vm_is_pending(domain, host, run_module):
    domain.active = False
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True
    assert result['mount']['status'] == 'pending'
    assert domain.config and not domain.live
    assert ('attach', False, True) in domain.calls
    assert domain.records(config=True)['m1']['tag'] == TAG
    assert domain.meta['live'] is None
    assert run_module(vm_model_mount, ARGS)['changed'] is False


def test_stopped_then_started_completes(domain, host, run_module):
    domain.active = False
    run_module(vm_model_mount, ARGS)
    # Start: the persistent config becomes the live one.
    domain.active = True
    domain.live = list(domain.config)
    domain.meta['live'] = domain.meta['config']
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True and result['mount']['status'] == 'mounted'
    assert [a for a in result['actions'] if 'attach' in a] == []
    assert guest_targets(domain) == ['/mnt/models/m1']


def test_absent(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    result = run_module(vm_model_mount, {'vm': 'vm1', 'model': 'm1', 'state': 'absent'})
    assert result['changed'] is True, result
    assert domain.live == [] and domain.config == []
    assert guest_targets(domain) == []
    assert TAG not in domain.guest.files['/etc/fstab']
    assert domain.meta == {'live': None, 'config': None}
    # The guest unmount comes before the detach.
    umount_at = [i for i, a in enumerate(result['actions']) if a.startswith('unmount')][0]
    detach_at = [i for i, a in enumerate(result['actions']) if a.startswith('detach')][0]
    assert umount_at < detach_at
    again = run_module(vm_model_mount, {'vm': 'vm1', 'model': 'm1', 'state': 'absent'})
    assert again['changed'] is False


def test_absent_busy_needs_force(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    domain.guest.busy.add('/mnt/models/m1')
    result = run_module(vm_model_mount, {'vm': 'vm1', 'model': 'm1', 'state': 'absent'})
    assert result['failed'] and 'busy' in result['msg']
    assert len(domain.live) == 1, 'never detach a device the guest still has mounted'
    result = run_module(vm_model_mount, {'vm': 'vm1', 'model': 'm1', 'state': 'absent', 'force': True})
    assert result['changed'] and domain.live == []


def test_absent_stopped_vm(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    domain.active = False
    domain.live = []
    result = run_module(vm_model_mount, {'vm': 'vm1', 'model': 'm1', 'state': 'absent'})
    assert result['changed'] is True
    assert domain.config == [] and domain.meta['config'] is None


def test_absent_missing_vm_is_ok(domain, host, run_module):
    result = run_module(vm_model_mount, {'vm': 'gone', 'model': 'm1', 'state': 'absent'})
    assert result['changed'] is False and result['mount']['status'] == 'absent'


def test_mounted_missing_vm_fails(domain, host, run_module):
    result = run_module(vm_model_mount, dict(ARGS, vm='gone'))
    assert result['failed'] and 'gone' in result['msg']


def test_duplicate_live_tag_is_not_added(domain, host, run_module):
    """libvirt accepts a second live device with the same tag; the module must not."""
    run_module(vm_model_mount, ARGS)
    domain.guest.mounts = [m for m in domain.guest.mounts if m[2] != 'virtiofs']
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True
    assert len(domain.live) == 1 and guest_targets(domain) == ['/mnt/models/m1']


def test_persist_false_live_only(domain, host, run_module):
    result = run_module(vm_model_mount, dict(ARGS, persist=False))
    assert result['changed']
    assert domain.live and not domain.config
    assert TAG not in domain.guest.files['/etc/fstab']
    assert 'm1' in domain.records() and domain.meta['config'] is None


def test_read_write(domain, host, run_module):
    run_module(vm_model_mount, dict(ARGS, read_only=False))
    assert (TAG, '/mnt/models/m1', 'virtiofs', 'rw') in [m[:4] for m in domain.guest.mounts]
    assert domain.live[0][1].startswith('/var/lib/aimodel/volumes/labvol/rw/')


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
    (dict(ARGS, cache='never'), 'cache'),
    (dict(ARGS, read_ahead_kb=-1), 'read_ahead_kb'),
    (dict(ARGS, read_ahead_kb=65537), 'read_ahead_kb'),
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
    assert snapshot(domain) == before and host.mount_calls == []


def test_password_never_in_output_or_records(domain, host, run_module):
    result = run_module(vm_model_mount, dict(ARGS, volume=dict(ARGS['volume'], meta_password=None)), diff=True)
    text = json.dumps(result) + json.dumps(domain.meta) + json.dumps(domain.guest.files) + repr(domain.guest.argvs)
    assert 's3cr3t-pw' not in text


@pytest.mark.parametrize('how', ['device re-attached by hand', 'host volume mounted again'])
def test_stale_guest_mount_is_healed_with_a_new_device(domain, host, run_module, how):
    run_module(vm_model_mount, ARGS)
    # The guest mount is dead although a device with its tag is live: it belongs to an earlier device or
    # reads through a host volume mount that is gone. Both change the data path, which brings the probe.
    if how == 'device re-attached by hand':
        domain.backends[TAG] = '9999.1'
    else:
        host.mount_ids['/var/lib/aimodel/volumes/labvol/ro'] = '777'
    domain.guest.stale.add('/mnt/models/m1')
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True
    actions = ' | '.join(result['actions'])
    assert 'unmount the broken' in actions and 'detach the outdated device' in actions and 'attach virtiofs' in actions
    assert ('detach', True, False) in domain.calls, 'only the live device is replaced'
    assert len(domain.live) == 1 and len(domain.config) == 1
    assert guest_targets(domain) == ['/mnt/models/m1']


def test_noop_probes_the_guest_mount_only_when_its_data_path_changed(domain, host, run_module):
    first = run_module(vm_model_mount, ARGS)
    assert first['changed'] is True
    assert domain.records()['m1']['verified'] and 'verified' not in first['mount']
    assert 'verified' not in domain.records(config=True)['m1'], 'the data path is live state, not config'
    domain.guest.argvs = []
    assert run_module(vm_model_mount, ARGS)['changed'] is False
    assert not [a for a in domain.guest.argvs if a[0] == 'stat'], 'unchanged data path: not probed again'
    # Once the data path changed (here: the host volume was mounted again), a no-op probes; while the probe
    # passes, nothing changes (and nothing is written).
    host.mount_ids['/var/lib/aimodel/volumes/labvol/ro'] = '778'
    before = snapshot(domain)
    assert run_module(vm_model_mount, ARGS)['changed'] is False
    assert [a for a in domain.guest.argvs if a[0] == 'stat']
    assert snapshot(domain) == before


def test_repair_refreshes_the_data_path_and_keeps_timestamps(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    created, updated = domain.records()['m1']['created'], domain.records()['m1']['updated']
    domain.guest.mounts = [m for m in domain.guest.mounts if m[2] != 'virtiofs']    # umount by hand in the guest
    domain.backends[TAG] = '5555.3'
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True and any(a.startswith('mount ') for a in result['actions'])
    rec = domain.records()['m1']
    assert rec['verified'].startswith('5555.3@') and (rec['created'], rec['updated']) == (created, updated)


def guest_read_ahead(domain):
    mount = [m for m in domain.guest.mounts if m[2] == 'virtiofs'][-1]
    return domain.guest.files['/sys/class/bdi/%s/read_ahead_kb' % domain.guest.mount_dev(mount)]


def test_mount_sets_the_guest_readahead(domain, host, run_module):
    result = run_module(vm_model_mount, ARGS)
    assert any(a == 'set the readahead of %s in the guest to 1024 KiB' % TAG for a in result['actions'])
    assert guest_read_ahead(domain) == '1024\n'
    assert result['mount']['read_ahead_kb'] == 1024 and domain.records()['m1']['read_ahead_kb'] == 1024


def test_mount_table_failure_after_the_guest_mount_takes_the_mount_back(domain, host, run_module, monkeypatch):
    from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
    real = _guest.Agent.mounts
    calls = []

    def flaky(agent):
        calls.append(1)
        if len(calls) > 1:   # the read after the guest mount
            raise _guest.GuestError('guest agent of VM vm1 did not answer guest-file-open: injected', unreachable=True)
        return real(agent)
    monkeypatch.setattr(_guest.Agent, 'mounts', flaky)
    before = snapshot(domain)
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and 'mount %s at /mnt/models/m1 in the guest (ro) failed' % TAG in result['msg']
    assert guest_targets(domain) == [] and domain.live == [] and domain.config == []
    assert snapshot(domain) == before


def test_read_ahead_zero_keeps_the_guest_default(domain, host, run_module):
    result = run_module(vm_model_mount, dict(ARGS, read_ahead_kb=0))
    assert not [a for a in result['actions'] if 'readahead' in a]
    assert guest_read_ahead(domain) == '128\n'
    assert run_module(vm_model_mount, dict(ARGS, read_ahead_kb=0))['changed'] is False


def test_guest_reboot_brings_the_readahead_back(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    # The guest rebooted: its fstab mounted the model again (a new mount, the kernel's default readahead).
    domain.guest.mounts = [m for m in domain.guest.mounts if m[2] != 'virtiofs']
    domain.guest.execute(['mount', '-t', 'virtiofs', '-o', 'ro', TAG, '/mnt/models/m1'], [TAG])
    assert guest_read_ahead(domain) == '128\n'
    domain.guest.argvs = []
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True
    assert result['actions'] == ['set the readahead of %s in the guest to 1024 KiB (was 128 KiB)' % TAG,
                                 'write the record of m1 (live)']
    assert [a for a in domain.guest.argvs if a[0] == 'stat'], 'a new guest mount is probed'
    assert guest_read_ahead(domain) == '1024\n'
    domain.guest.argvs = []
    assert run_module(vm_model_mount, ARGS)['changed'] is False
    assert not domain.guest.argvs, 'then a no-op again: no guest process'


def test_changing_read_ahead_does_not_remount(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    result = run_module(vm_model_mount, dict(ARGS, read_ahead_kb=4096))
    assert result['changed'] is True
    assert not [a for a in result['actions'] if a.startswith(('mount ', 'unmount ', 'attach', 'detach'))], result['actions']
    assert guest_read_ahead(domain) == '4096\n' and domain.records()['m1']['read_ahead_kb'] == 4096
    assert domain.records(config=True)['m1']['read_ahead_kb'] == 4096


def test_device_detached_by_hand_leaves_dead_guest_mount(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    domain.live = []          # virsh detach-device --live: the guest keeps a dead mount
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True
    assert result['actions'][0].startswith('unmount the stale')
    assert ('attach', True, False) in domain.calls
    assert guest_targets(domain) == ['/mnt/models/m1'] and len(domain.live) == 1


def test_dead_host_volume_is_remounted_and_device_replaced(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    host.state['/var/lib/aimodel/volumes/labvol/ro'] = 'dead'
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True
    assert any('remount the dead host volume' in a for a in result['actions'])
    assert any('detach the outdated device' in a for a in result['actions'])
    assert host.state['/var/lib/aimodel/volumes/labvol/ro'] == 'mounted'
    assert host.unmounted == ['/var/lib/aimodel/volumes/labvol/ro']


@pytest.mark.parametrize('prepare', ['running', 'stopped'])
def test_check_mode_absent_and_stopped_change_nothing(domain, host, run_module, prepare):
    run_module(vm_model_mount, ARGS)
    if prepare == 'stopped':
        domain.active = False
        domain.live = []
    before = snapshot(domain)
    calls = len(domain.calls)
    result = run_module(vm_model_mount, {'vm': 'vm1', 'model': 'm1', 'state': 'absent'}, check=True, diff=True)
    assert result['changed'] is True and result['actions']
    assert result['diff']['before']['model'] == 'm1' and result['diff']['after'] == {}
    assert snapshot(domain) == before and len(domain.calls) == calls
    result = run_module(vm_model_mount, dict(ARGS, mount_path='/srv/other'), check=True)
    assert result['changed'] is True
    assert snapshot(domain) == before and len(domain.calls) == calls


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
    assert domain.calls == []


def test_volume_secrets_from_environment(domain, host, run_module, monkeypatch):
    monkeypatch.setenv('AIMODEL_META_URL', 'redis://127.0.0.1:16379/1')
    monkeypatch.setenv('AIMODEL_META_PASSWORD', 'env-secret')
    monkeypatch.setenv('LIBVIRT_DEFAULT_URI', 'qemu:///system')
    result = run_module(vm_model_mount, dict(ARGS, volume={'name': 'labvol'}))
    assert result['changed'] is True, result
    assert host.mount_calls[0]['meta_url'] == 'redis://127.0.0.1:16379/1'
    assert host.mount_calls[0]['password'] == 'env-secret'
    assert 'env-secret' not in json.dumps(result)


def test_rollback_message_keeps_the_shared_host_volume(domain, host, run_module):
    domain.guest.fail_mount = 'Permission denied'
    result = run_module(vm_model_mount, ARGS)
    assert 'Kept on purpose: host volume labvol stays mounted' in result['msg']
    assert 'NOT rolled back' not in result['msg']


def test_mount_point_that_is_a_file_fails_before_any_device(domain, host, run_module):
    domain.guest.files['/srv/blocker'] = 'x'
    result = run_module(vm_model_mount, dict(ARGS, mount_path='/srv/blocker'))
    assert result['failed'] and 'File exists' in result['msg']
    assert not [c for c in domain.calls if c[0] == 'attach']
    assert host.mount_calls == [], 'nor is the host volume mounted for it'
    assert 'Rolled back: nothing was left to roll back' in result['msg']


def test_rollback_removes_only_the_directories_it_created(domain, host, run_module):
    domain.guest.fail_mount = 'Permission denied'
    result = run_module(vm_model_mount, dict(ARGS, mount_path='/mnt/new/deep/m1'))
    assert result['failed'] and 'removed the directories it created' in result['msg']
    assert domain.guest.dirs == set(['/mnt', '/persist', '/etc'])


def test_volume_not_a_dict_names_the_field(domain, host, run_module):
    result = run_module(vm_model_mount, dict(ARGS, volume='not-a-dict'))
    assert result['failed'] and result['msg'].startswith('volume:')


@pytest.mark.parametrize('state', ['mounted', 'absent'])
def test_dead_virtiofsd_under_a_guest_mount_is_never_touched(domain, host, run_module, state):
    run_module(vm_model_mount, ARGS)
    domain.dead_backends.add(TAG)
    domain.guest.argvs = []
    before = snapshot(domain)
    args = ARGS if state == 'mounted' else {'vm': 'vm1', 'model': 'm1', 'state': 'absent', 'force': True}
    result = run_module(vm_model_mount, args)
    assert result['failed'] and 'Restart the VM' in result['msg'] and 'nothing was changed' in result['msg']
    assert not [a for a in domain.guest.argvs if a[0] != 'cat'], 'only the mount table and fstab are read'
    assert snapshot(domain) == before


def test_dead_virtiofsd_without_guest_mount_gets_a_new_device(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    domain.dead_backends.add(TAG)
    domain.guest.mounts = [m for m in domain.guest.mounts if m[2] != 'virtiofs']
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] is True
    assert any('detach the outdated device' in a for a in result['actions'])
    assert guest_targets(domain) == ['/mnt/models/m1']


def test_shared_memory_forgotten_by_libvirt_is_explained(domain, host, run_module, monkeypatch):
    from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt

    def refuse(device_xml, live, config):
        raise _libvirt.VirtError("cannot attach: unsupported configuration: 'virtiofs' requires shared memory", 67)
    monkeypatch.setattr(domain, 'attach', refuse)
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and 'libvirtd restarts' in result['msg'] and 'Restart the VM' in result['msg']
