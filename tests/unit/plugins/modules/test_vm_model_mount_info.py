# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vm_model_mount_info through its main(), on the fake domain and host volume of conftest."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import pytest

from ansible_collections.aimodel.kvm.plugins.module_utils import _export
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _tuning
from ansible_collections.aimodel.kvm.plugins.modules import vm_model_mount
from ansible_collections.aimodel.kvm.plugins.modules import vm_model_mount_info
from ansible_collections.aimodel.kvm.tests.unit.plugins.fakes import FAKE_IDENTITY, RHEL8_BLOCKED, UUID
from ansible_collections.aimodel.kvm.tests.unit.plugins.modules.test_vm_model_mount import ARGS, POINT, TAG, \
    guest_read_ahead, legacy


def info(run_module, vm='vm1'):
    return run_module(vm_model_mount_info, {'vm': vm} if vm else {})


def test_info_of_a_missing_vm_is_empty(domain, host, run_module):
    result = info(run_module, 'no-such-vm')
    assert result['mounts'] == [] and result['orphans'] == [] and result['vms'] == []
    assert result['changed'] is False


def test_info_reports_a_fresh_mount_as_mounted(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    result = info(run_module, None)
    assert [(m['vm'], m['model'], m['status'], m['reasons']) for m in result['mounts']] == [('vm1', 'm1', 'mounted', [])]
    entry = result['mounts'][0]
    assert entry['layout'] == 'shared_device' and entry['device'] == 'aimodel-ro' and entry['host_pinned'] == 'pinned'
    assert entry['guest_mounted'] is True and entry['guest_accessible'] is True and entry['in_fstab'] is True
    assert 'verified' not in entry
    assert result['vms'][0]['guest_reachable'] is True and result['orphans'] == []


def test_info_reports_a_readahead_difference_as_tuning_not_drift(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    base = domain.guest.visible('/run/aimodel/ro')
    domain.guest.files['/sys/class/bdi/%s/read_ahead_kb' % base['dev']] = '128\n'
    entry = info(run_module)['mounts'][0]
    assert entry['status'] == 'mounted' and entry['reasons'] == []
    # The fake guest's PID 1 is no systemd: nothing sets the readahead again after a reboot.
    assert entry['tuning'] == {'read_ahead_kb': 1024, 'guest_read_ahead_kb': 128, 'differs': True,
                               'kept_on_reboot': False, 'kept_by': None, 'not_kept': 'no_systemd'}
    run_module(vm_model_mount, ARGS)
    assert guest_read_ahead(domain) == '1024\n'
    entry = info(run_module)['mounts'][0]
    assert entry['tuning']['guest_read_ahead_kb'] == 1024 and entry['tuning']['differs'] is False


def test_info_says_whether_a_systemd_guest_keeps_the_readahead(domain, host, run_module):
    domain.guest.files['/proc/1/comm'] = 'systemd\n'
    run_module(vm_model_mount, ARGS)
    tuning = info(run_module)['mounts'][0]['tuning']
    assert tuning['kept_on_reboot'] is True and tuning['not_kept'] is None
    assert tuning['kept_by'] == '/etc/systemd/system/aimodel-ro-readahead.service'
    # The unit changed in the guest: not kept (a run writes it again).
    domain.guest.files[_tuning.wants_path('aimodel-ro')] = '[Service]\nExecStart=/bin/true\n'
    tuning = info(run_module)['mounts'][0]['tuning']
    assert tuning['kept_on_reboot'] is False and tuning['not_kept'] == 'unit_missing'
    assert run_module(vm_model_mount, ARGS)['changed']
    assert info(run_module)['mounts'][0]['tuning']['kept_on_reboot'] is True
    # A mount that is not persisted is not mounted again after a reboot at all.
    run_module(vm_model_mount, dict(ARGS, persist=False))
    tuning = info(run_module)['mounts'][0]['tuning']
    assert tuning['kept_on_reboot'] is False and tuning['not_kept'] == 'not_persisted'
    # No readahead asked: no tuning to report.
    run_module(vm_model_mount, dict(ARGS, read_ahead_kb=0))
    assert info(run_module)['mounts'][0]['tuning'] is None


def test_info_reports_a_model_that_is_not_pinned(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    host.unpin(UUID, 'ro', TAG)
    entry = info(run_module)['mounts'][0]
    assert entry['host_pinned'] == 'missing' and entry['reasons'] == ['not_pinned'] and entry['status'] == 'degraded'
    run_module(vm_model_mount, ARGS)
    assert info(run_module)['mounts'][0]['reasons'] == []


def test_info_reports_a_stale_pin(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    host.mount_ids[POINT] = '999'       # the volume was mounted again since the model was pinned
    entry = info(run_module)['mounts'][0]
    assert entry['host_pinned'] == 'stale' and entry['reasons'] == ['pin_stale']
    run_module(vm_model_mount, ARGS)
    entry = info(run_module)['mounts'][0]
    assert entry['host_pinned'] == 'pinned' and entry['status'] == 'mounted'


def test_info_reports_a_bind_without_a_record(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    host.dirs.add(POINT + '/models/x')
    host.pin(UUID, 'ro', 'aim-x-12345678', POINT, 'models/x', True)
    result = info(run_module)
    assert result['orphans'] == [{'vm': 'vm1', 'kind': 'bind_without_record', 'where': 'host', 'tag': 'aim-x-12345678',
                                  'model': None, 'source': _export.entry_path(UUID, 'ro', 'aim-x-12345678')}]
    assert result['mounts'][0]['status'] == 'mounted'
    only_m1 = run_module(vm_model_mount_info, {'vm': 'vm1', 'model': 'm1'})
    assert only_m1['orphans'] == [] and len(only_m1['mounts']) == 1


def test_info_reports_the_layout_of_a_model_mounted_the_earlier_way(domain, host, run_module):
    legacy(domain, host)
    entry = info(run_module)['mounts'][0]
    assert entry['layout'] == 'own_device' and entry['device'] is None and entry['host_pinned'] is None
    assert entry['device_live'] is True and entry['guest_mounted'] is True
    run_module(vm_model_mount, ARGS)
    entry = info(run_module)['mounts'][0]
    assert entry['layout'] == 'shared_device' and entry['status'] == 'mounted' and entry['reasons'] == []


def test_one_misbehaving_guest_does_not_hide_the_others(domain, host, run_module, monkeypatch):
    from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
    from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
    from ansible_collections.aimodel.kvm.tests.unit.plugins.fakes import FakeConnection, FakeDomain
    evil = FakeDomain(name='evil', uuid='99999999-2222-3333-4444-555555555555')
    conn = FakeConnection(domain, evil)
    monkeypatch.setattr(_libvirt, 'connect', lambda uri: conn)
    run_module(vm_model_mount, ARGS)
    run_module(vm_model_mount, dict(ARGS, vm='evil'))
    # The guest's root points its fstab at an endless file (ln -s /dev/zero /etc/fstab).
    evil.guest.files['/etc/fstab'] = '\0' * (_guest.MAX_FILE_BYTES + 1)
    result = info(run_module, None)
    by_vm = dict((m['vm'], m) for m in result['mounts'])
    assert by_vm['vm1']['status'] == 'mounted' and by_vm['vm1']['reasons'] == []
    assert by_vm['evil']['status'] == 'degraded' and 'guest_error' in by_vm['evil']['reasons']
    vms = dict((v['vm'], v) for v in result['vms'])
    assert vms['vm1']['guest_error'] is None
    assert 'out of bounds' in vms['evil']['guest_error'] and vms['evil']['guest_reachable'] is True


def test_a_guest_that_answers_garbage_half_way_is_isolated(domain, host, run_module, monkeypatch):
    from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
    run_module(vm_model_mount, ARGS)
    domain.guest.stale.add('/mnt/models/m1')   # forces the probe, which then answers with a list
    real = _guest.Agent.accessible_many

    def garbage(self, paths):
        raise _guest.GuestError('the guest agent answered out of bounds: the reply to guest-exec is list, not dict')
    monkeypatch.setattr(_guest.Agent, 'accessible_many', garbage)
    result = info(run_module)
    monkeypatch.setattr(_guest.Agent, 'accessible_many', real)
    assert result.get('failed') is not True, result
    assert result['mounts'][0]['reasons'] == ['guest_error']
    assert 'out of bounds' in result['vms'][0]['guest_error']


def test_info_reports_a_slow_host_volume(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    host.state[POINT] = 'slow'
    entry = info(run_module)['mounts'][0]
    assert entry['reasons'] == ['host_volume_slow'] and entry['status'] == 'degraded'


def test_info_reports_a_host_mount_of_another_volume_of_the_recorded_name(domain, host, run_module):
    first = run_module(vm_model_mount, ARGS)
    host.identities[POINT] = ('labvol', '9d6b2f7e-0c4a-4d1e-8f3b-2a1c0e9d8b7a')
    entry = info(run_module)['mounts'][0]
    assert entry['reasons'] == ['host_volume_not_recorded'] and entry['status'] == 'degraded'
    assert entry['volume_uuid'] == first['mount']['volume_uuid'] == FAKE_IDENTITY[1]
    assert entry['meta_url'] == 'redis://127.0.0.1:16379/1'
    assert host.engine_calls == ['redis://127.0.0.1:16379/1'], 'info never asks the metadata engine'


@pytest.mark.parametrize('args, field', [
    ({'uri': 'qemu+ext:///system?command=/bin/touch'}, 'uri'),
    ({'uri': 'qemu+ssh://hv2/system'}, 'uri'),
    ({'volume': {'mount_root': 'volumes'}}, 'volume.mount_root'),
    ({'volume': {'mount_root': '/tmp/mr'}}, 'volume.mount_root'),
    ({'volume': {'mount_root': ''}}, 'volume.mount_root'),
])
def test_info_checks_the_options_acting_on_the_host_first(domain, host, run_module, monkeypatch, args, field):
    host.tree.add('/tmp', mode=0o1777)
    connected = []
    monkeypatch.setattr(_libvirt, 'connect', connected.append)
    result = run_module(vm_model_mount_info, dict(args, vm='vm1'))
    assert result['failed'] and result['field'] == field and result['msg'].startswith(field + ': '), result
    assert connected == []


def test_info_reads_volumes_under_the_normalized_mount_root(domain, host, run_module):
    host.tree.add('/srv').add('/srv/volumes')
    host.dirs.add('/srv/volumes/labvol/ro/models/m1')
    run_module(vm_model_mount, dict(ARGS, volume=dict(ARGS['volume'], mount_root='/srv/volumes')))
    entry = run_module(vm_model_mount_info, {'vm': 'vm1', 'volume': {'mount_root': '/srv/volumes/'}})['mounts'][0]
    assert entry['status'] == 'mounted', entry


def test_info_reports_every_volume_whatever_volume_name_says(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    # The volume a group default gives both modules: info uses only its mount_root, and filters nothing by name.
    result = run_module(vm_model_mount_info, {'vm': 'vm1', 'volume': dict(ARGS['volume'], name='othervol')})
    assert [(m['volume'], m['status']) for m in result['mounts']] == [('labvol', 'mounted')], result


def test_info_masks_a_password_inside_volume_meta_url(domain, host, run_module):
    result = run_module(vm_model_mount_info, {'vm': 'vm1', 'volume': {'meta_url': 'redis://:s3cr3t-pw@127.0.0.1:1/1'}})
    assert not result.get('failed'), result
    assert 's3cr3t-pw' not in repr(result)


@pytest.mark.parametrize('alias', ['vm', 'name', 'guest'])
def test_the_vm_has_the_names_vm_name_and_guest_in_both_modules(domain, host, run_module, alias):
    args = dict((alias if key == 'vm' else key, value) for key, value in ARGS.items())
    assert run_module(vm_model_mount, args)['mount']['vm'] == 'vm1'
    result = run_module(vm_model_mount_info, {alias: 'vm1'})
    assert [m['vm'] for m in result['mounts']] == ['vm1'] and [v['vm'] for v in result['vms']] == ['vm1']


def test_a_slow_guest_uses_up_its_guest_timeout_and_the_others_in_full(domain, host, run_module, monkeypatch):
    from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
    from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
    from ansible_collections.aimodel.kvm.tests.unit.plugins.fakes import FakeConnection, FakeDomain, GuestClock, \
        slow_guest
    slow = FakeDomain(name='slow', uuid='99999999-2222-3333-4444-555555555555')
    conn = FakeConnection(domain, slow)
    monkeypatch.setattr(_libvirt, 'connect', lambda uri: conn)
    run_module(vm_model_mount, ARGS)
    run_module(vm_model_mount, dict(ARGS, vm='slow'))
    clock = GuestClock()
    monkeypatch.setattr(_guest, 'time', clock)
    timeouts = slow_guest(slow, clock, 9)       # just within agent_timeout, every call
    result = run_module(vm_model_mount_info, {'agent_timeout': 10, 'guest_report_timeout': 20})
    assert timeouts == [10, 10, 2]
    by_vm = dict((m['vm'], m) for m in result['mounts'])
    assert by_vm['vm1']['status'] == 'mounted' and by_vm['vm1']['reasons'] == []
    assert by_vm['slow']['reasons'] == ['guest_error']
    vms = dict((v['vm'], v) for v in result['vms'])
    assert 'used up the guest time of the run (guest_report_timeout, 20 s)' in vms['slow']['guest_error']
    assert vms['vm1']['guest_error'] is None
    # By default each call may take an agent timeout (30 s), and the VM's report 30 s in all.
    del timeouts[:]
    result = run_module(vm_model_mount_info, {})
    assert timeouts == [30, 21, 12, 3] and 'guest_report_timeout, 30 s' in result['vms'][1]['guest_error']


def test_info_timeouts_are_validated(domain, host, run_module):
    for args, field in (({'guest_report_timeout': 0}, 'guest_report_timeout'), ({'agent_timeout': 0}, 'agent_timeout'),
                        ({'agent_timeout': 90000}, 'agent_timeout')):
        result = run_module(vm_model_mount_info, args)
        assert result['failed'] and result['field'] == field and result['msg'].startswith(field + ': must be between')


def test_info_reports_a_locked_down_guest_as_reachable_with_what_it_could_not_observe(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    run_module(vm_model_mount, dict(ARGS, model='m2', source_path='models/m2', guest_mount=False))
    domain.guest.disabled.update(RHEL8_BLOCKED)
    result = info(run_module)
    vm = result['vms'][0]
    assert vm['guest_reachable'] is True and vm['guest_frozen'] is False
    assert vm['guest_disabled_commands'] == ['guest-exec', 'guest-exec-status', 'guest-file-close', 'guest-file-open',
                                             'guest-file-read']
    assert vm['guest_unobserved'] == ['mounts', 'fstab', 'read_ahead', 'accessible']
    assert 'BLACKLIST_RPC' in vm['guest_error']
    by_model = dict((m['model'], m) for m in result['mounts'])
    assert by_model['m1']['reasons'] == ['guest_commands_disabled'] and by_model['m1']['guest_mounted'] is None
    assert by_model['m2']['status'] == 'mounted', 'a model the guest mounts by itself is served: nothing to observe'


def test_info_of_an_agent_that_reads_files_but_runs_no_command_reports_the_rest(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    domain.guest.disabled.update(['guest-exec', 'guest-exec-status'])
    result = info(run_module)
    vm, entry = result['vms'][0], result['mounts'][0]
    assert vm['guest_unobserved'] == ['accessible'] and vm['guest_error'] is None
    assert vm['guest_disabled_commands'] == ['guest-exec', 'guest-exec-status']
    assert entry['status'] == 'mounted' and entry['guest_mounted'] is True and entry['guest_accessible'] is None
    assert entry['in_fstab'] is True and entry['tuning']['guest_read_ahead_kb'] == 1024


def test_info_reports_a_frozen_guest(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    domain.guest.frozen = True
    vm = info(run_module)['vms'][0]
    assert vm['guest_reachable'] is True and vm['guest_frozen'] is True and 'domfsthaw' in vm['guest_error']


def test_info_shows_the_free_hotplug_slots_per_vm(domain, host, run_module):
    assert info(run_module)['vms'][0]['free_hotplug_slots'] == 28
    domain.root_ports = 6
    assert info(run_module)['vms'][0]['free_hotplug_slots'] == 4
    run_module(vm_model_mount, ARGS)
    assert info(run_module)['vms'][0]['free_hotplug_slots'] == 3
    domain.active = False
    assert info(run_module)['vms'][0]['free_hotplug_slots'] is None


def test_info_reports_a_detached_record_as_detached_without_orphans(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    run_module(vm_model_mount, {'vm': 'vm1', 'model': 'm1', 'state': 'detached'})
    result = info(run_module)
    assert [(m['model'], m['status'], m['reasons']) for m in result['mounts']] == [('m1', 'detached', [])]
    entry = result['mounts'][0]
    assert entry['device_live'] is False and entry['guest_mounted'] is False and 'detached' not in entry
    assert result['orphans'] == []


def test_info_looks_for_the_volume_at_the_records_mount_root(domain, host, run_module):
    host.dirs.add('/srv/vols/labvol/ro/models/m1')
    run_module(vm_model_mount, dict(ARGS, volume=dict(ARGS['volume'], mount_root='/srv/vols')))
    result = info(run_module)
    assert [(m['model'], m['status'], m['reasons']) for m in result['mounts']] == [('m1', 'mounted', [])], result['mounts']
