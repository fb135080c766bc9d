# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vm_model_mounts through its main(), on the fake domain and host of conftest: a VM's whole set in one run."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import json
import os

import pytest

from ansible_collections.aimodel.kvm.plugins.module_utils import _lock
from ansible_collections.aimodel.kvm.plugins.modules import vm_model_mount
from ansible_collections.aimodel.kvm.plugins.modules import vm_model_mounts
from ansible_collections.aimodel.kvm.tests.unit.plugins.modules.test_vm_model_mount import ARGS, snapshot

VOLUME = ARGS['volume']
M1 = {'model': 'm1', 'source_path': 'models/m1', 'volume': VOLUME}
M2 = {'model': 'm2', 'source_path': 'models/m2', 'volume': VOLUME}


def run_set(run_module, mounts, **extra):
    check = extra.pop('check', False)
    diff = extra.pop('diff', False)
    args = dict({'vm': 'vm1', 'mounts': mounts}, **extra)
    return run_module(vm_model_mounts, args, check=check, diff=diff)


def guest_paths(domain):
    return sorted(target for target, _root, _opts in domain.guest.model_mounts())


def counting(domain):
    """Counts the domain's guest agent calls by command, and its XML reads, until the returned stop() is called."""
    counts, xml_calls = {}, []
    real_agent, real_xml = domain.agent_command, domain.xml

    def agent_command(command_json, timeout):
        name = json.loads(command_json)['execute']
        counts[name] = counts.get(name, 0) + 1
        return real_agent(command_json, timeout)

    def xml(config=False):
        xml_calls.append(config)
        return real_xml(config)

    domain.agent_command, domain.xml = agent_command, xml

    def stop():
        domain.agent_command, domain.xml = real_agent, real_xml
    return counts, xml_calls, stop


def test_mounts_a_set_in_one_run(domain, host, run_module):
    result = run_set(run_module, [M1, M2])
    assert result['changed'] is True, result
    assert [m['model'] for m in result['mounts']] == ['m1', 'm2']
    assert all(m['mount']['status'] == 'mounted' for m in result['mounts'])
    assert guest_paths(domain) == ['/mnt/models/m1', '/mnt/models/m2']
    assert sorted(domain.records()) == ['m1', 'm2'] and sorted(domain.records(config=True)) == ['m1', 'm2']
    assert len(domain.live) == 1, 'both models share the VM device'
    assert result['unmounted'] == []
    assert any(a.startswith('m2: ') for a in result['actions'])


def test_the_same_as_one_model_at_a_time(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    run_module(vm_model_mount, dict(ARGS, **M2))
    one_by_one = snapshot(domain)
    result = run_set(run_module, [M1, M2])
    assert result['changed'] is False, result
    assert snapshot(domain) == one_by_one


def noop_reads(domain, run_module, mounts):
    """(agent calls by command, XML reads) of a second run of the set, which changes nothing."""
    run_set(run_module, mounts)
    before = snapshot(domain)
    domain.guest.argvs = []
    counts, xml_calls, stop = counting(domain)
    try:
        result = run_set(run_module, mounts)
    finally:
        stop()
    assert result['changed'] is False, result
    assert snapshot(domain) == before
    assert domain.guest.argvs == [], 'a no-op starts no guest process'
    return counts, xml_calls


def test_noop_reads_the_vm_once(domain, host, run_module):
    one = noop_reads(domain, run_module, [M1])
    run_set(run_module, [], exclusive=True)
    many = [dict(M1, model='m%d' % i, mount_path='/mnt/models/n%d' % i) for i in range(1, 9)]
    eight = noop_reads(domain, run_module, many)
    assert eight == one, 'eight models are read as one: the VM once per run (%s vs %s)' % (eight, one)
    assert len(one[1]) == 2, 'the live and the persistent XML, once each'


def test_exclusive_unmounts_what_is_not_declared(domain, host, run_module):
    run_set(run_module, [M1, M2])
    result = run_set(run_module, [M1], exclusive=True)
    assert result['changed'] is True
    assert result['unmounted'] == ['m2']
    assert result['mounts'][0]['changed'] is False
    assert guest_paths(domain) == ['/mnt/models/m1']
    assert sorted(domain.records()) == ['m1'] and sorted(domain.records(config=True)) == ['m1']
    again = run_set(run_module, [M1], exclusive=True)
    assert again['changed'] is False and again['unmounted'] == []


def test_without_exclusive_undeclared_models_stay(domain, host, run_module):
    run_set(run_module, [M1, M2])
    result = run_set(run_module, [M1])
    assert result['changed'] is False and result['unmounted'] == []
    assert sorted(domain.records()) == ['m1', 'm2']


def test_empty_set_exclusive_takes_everything_out(domain, host, run_module):
    run_set(run_module, [M1, M2])
    result = run_set(run_module, [], exclusive=True)
    assert result['changed'] is True and sorted(result['unmounted']) == ['m1', 'm2']
    assert guest_paths(domain) == [] and domain.live == [] and domain.config == []
    assert domain.records() == {} and host.binds == {}


def test_an_entry_may_unmount(domain, host, run_module):
    run_set(run_module, [M1, M2])
    result = run_set(run_module, [M1, {'model': 'm2', 'state': 'absent'}])
    assert result['changed'] is True
    assert [m['mount']['status'] for m in result['mounts']] == ['mounted', 'absent']
    assert guest_paths(domain) == ['/mnt/models/m1']


@pytest.mark.parametrize('mounts, field', [
    ([M1, dict(M2, mount_path='relative/path')], 'mounts[1].mount_path'),
    ([M1, dict(M2, mount_path='/etc/models')], 'mounts[1].mount_path'),
    ([dict(M1, source_path=None)], 'mounts[0].source_path'),
    ([M1, dict(M2, volume=dict(VOLUME, name='bad name'))], 'mounts[1].volume.name'),
    ([M1, dict(M1)], 'mounts[1].model'),
    ([M1, dict(M2, mount_path='/mnt/models/m1')], 'mounts[1].mount_path'),
    ([{'model': 'bad/model', 'state': 'absent'}], 'mounts[0].model'),
])
def test_a_bad_entry_names_its_field_and_changes_nothing(domain, host, run_module, mounts, field):
    before = snapshot(domain)
    result = run_set(run_module, mounts)
    assert result['failed'] and result['field'] == field, result
    assert result['msg'].startswith(field + ': '), result['msg']
    assert snapshot(domain) == before and host.calls == [] and host.mount_calls == []


def test_a_run_option_keeps_its_name(domain, host, run_module):
    result = run_set(run_module, [M1], lock_timeout=-1)
    assert result['failed'] and result['field'] == 'lock_timeout', result


def test_a_failing_entry_rolls_back_the_whole_run(domain, host, run_module):
    before = snapshot(domain)
    broken = dict(M2, model='m3', source_path='models/missing')
    result = run_set(run_module, [M1, M2, broken])
    assert result['failed'], result
    assert result['msg'].startswith('mounts[2] (model m3): '), result['msg']
    assert result['model'] == 'm3'
    assert 'Earlier in this run' in result['msg'] and 'Rolled back' in result['msg']
    assert 'NOT rolled back' not in result['msg'], result['msg']
    after = snapshot(domain)
    assert after[0] == before[0] and after[1] == before[1], 'no device left'
    assert after[2] == before[2], 'no record left'
    assert guest_paths(domain) == [] and host.binds == {}
    assert domain.guest.files['/etc/fstab'] == before[4]['/etc/fstab']


def test_a_failing_unmount_rolls_back_the_mounts_before_it(domain, host, run_module):
    run_set(run_module, [M1, M2])
    domain.guest.busy.add('/mnt/models/m2')
    before = snapshot(domain)
    result = run_set(run_module, [M1, dict(M1, model='m5', mount_path='/mnt/models/m5')], exclusive=True)
    assert result['failed'], result
    assert result['msg'].startswith('unmount of m2 (not declared): '), result['msg']
    assert snapshot(domain)[2] == before[2], 'the records are as they were: m5 rolled back'
    assert guest_paths(domain) == ['/mnt/models/m1', '/mnt/models/m2']


def test_unmounts_wait_for_the_mounts_unless_in_their_way(domain, host, run_module):
    run_set(run_module, [M1, dict(M2, mount_path='/mnt/models/shared')])
    result = run_set(run_module, [M1, dict(M1, model='m6', mount_path='/mnt/models/shared')], exclusive=True)
    assert result['changed'] is True and result['unmounted'] == ['m2'], result
    first = [a.split(':')[0] for a in result['actions']]
    assert first[0] == 'm2', 'm2 is in the way of m6: it goes first (%s)' % first
    assert guest_paths(domain) == ['/mnt/models/m1', '/mnt/models/shared']
    assert sorted(domain.records()) == ['m1', 'm6']


def test_a_failing_mount_after_an_unmount_in_its_way_says_the_unmount_stays(domain, host, run_module):
    run_set(run_module, [M1, dict(M2, mount_path='/mnt/models/shared')])
    broken = dict(M1, model='m7', source_path='models/missing', mount_path='/mnt/models/shared')
    result = run_set(run_module, [M1, broken], exclusive=True)
    assert result['failed'], result
    assert 'NOT rolled back' in result['msg'] and 'the unmount of m2' in result['msg'], result['msg']
    assert sorted(domain.records()) == ['m1']


def test_check_mode_changes_nothing(domain, host, run_module):
    run_set(run_module, [M1])
    before = snapshot(domain)
    result = run_set(run_module, [M2], exclusive=True, check=True)
    assert result['changed'] is True and result['unmounted'] == ['m1'], 'what the run would unmount'
    assert sorted(set(a.split(':')[0] for a in result['actions'])) == ['m1', 'm2']
    assert snapshot(domain) == before


def test_diff_by_model(domain, host, run_module):
    run_set(run_module, [M1])
    result = run_set(run_module, [M2], exclusive=True, diff=True)
    assert list(result['diff']['before']) == ['m1']
    assert list(result['diff']['after']) == ['m2']


def test_missing_vm(domain, host, run_module):
    result = run_module(vm_model_mounts, {'vm': 'nope', 'mounts': [M1]})
    assert result['failed'] and 'is not defined on this host' in result['msg']
    result = run_module(vm_model_mounts, {'vm': 'nope', 'mounts': [], 'exclusive': True})
    assert result['changed'] is False and not result.get('failed')


def test_a_run_for_a_vm_gone_removes_the_lock_files_of_vms_gone(domain, host, run_module):
    run_set(run_module, [M1])
    lock_dir = _lock.DEFAULT_LOCK_DIR
    gone = os.path.join(lock_dir, 'vm-99999999-2222-3333-4444-555555555555.lock')
    open(gone, 'w').close()
    mine = os.path.join(lock_dir, 'vm-%s.lock' % domain.uuid)
    assert os.path.exists(mine)
    run_set(run_module, [M1])
    assert os.path.exists(gone), 'only a run for a VM this host does not have looks for stale lock files'
    result = run_module(vm_model_mounts, {'vm': 'migrated-away', 'mounts': [], 'exclusive': True})
    assert result['changed'] is False and not os.path.exists(gone) and os.path.exists(mine)


def test_password_never_in_output(domain, host, run_module):
    result = run_set(run_module, [M1, M2], diff=True)
    assert 's3cr3t-pw' not in json.dumps(result)
    assert 's3cr3t-pw' not in json.dumps(domain.records())


def test_the_run_volume_serves_entries_without_one(domain, host, run_module):
    result = run_set(run_module, [{'model': 'm1', 'source_path': 'models/m1'}], volume=VOLUME)
    assert result['changed'] is True and domain.records()['m1']['volume'] == 'labvol'
    result = run_set(run_module, [{'model': 'm2', 'source_path': 'models/m2'}])
    assert result['failed'] and result['field'] == 'mounts[0].volume', result


def test_entries_may_detach_the_whole_set_keeping_the_records(domain, host, run_module):
    run_set(run_module, [M1, M2])
    result = run_set(run_module, [{'model': 'm1', 'state': 'detached'}, {'model': 'm2', 'state': 'detached'}])
    assert result['changed'] is True, result
    assert [m['mount']['status'] for m in result['mounts']] == ['detached', 'detached']
    assert guest_paths(domain) == [] and domain.live == [] and domain.config == [] and host.binds == {}
    for config in (False, True):
        records = domain.records(config=config)
        assert sorted(records) == ['m1', 'm2'] and all(r['detached'] == 'true' for r in records.values())
    again = run_set(run_module, [{'model': 'm1', 'state': 'detached'}, {'model': 'm2', 'state': 'detached'}])
    assert again['changed'] is False
    back = run_set(run_module, [M1, M2])
    assert back['changed'] is True and guest_paths(domain) == ['/mnt/models/m1', '/mnt/models/m2']
    assert all('detached' not in r for r in domain.records().values())


def test_a_detach_waits_for_the_mounts_and_a_failing_mount_leaves_it_undone(domain, host, run_module):
    run_set(run_module, [M1])
    domain.guest.fail_mount = 'Permission denied'
    result = run_set(run_module, [{'model': 'm1', 'state': 'detached'}, M2])
    assert result['failed'] and 'mounts[1] (model m2)' in result['msg'], result['msg']
    assert 'detached' not in domain.records()['m1'] and 'm2' not in domain.records()
    assert guest_paths(domain) == ['/mnt/models/m1']


def test_a_detach_in_the_way_of_a_mount_is_not_rolled_back(domain, host, run_module):
    run_set(run_module, [M1])
    domain.guest.fail_mount = 'Permission denied'
    result = run_set(run_module, [{'model': 'm1', 'state': 'detached'}, dict(M2, mount_path='/mnt/models/m1')])
    assert result['failed']
    assert 'the detach of m1' in result['msg'] and 'NOT rolled back' in result['msg'], result['msg']
    assert domain.records()['m1']['detached'] == 'true' and 'm2' not in domain.records()
