# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import pytest

from ansible_collections.aimodel.kvm.plugins.filter import model_mounts as mm

VOLUMES = {'v1': {'meta_url': 'redis://x'}}
CATALOG = {
    'a': {'volume': 'v1', 'source_path': '/a'},
    'b': {'volume': 'v1', 'source_path': '/b', 'mount_path': '/cb', 'read_only': 'yes'},
    'c': {'volume': 'v1', 'source_path': '/c', 'mount_path': '/cc', 'read_only': False},
}


def test_filters_are_exposed():
    filters = mm.FilterModule().filters()
    assert sorted(filters) == sorted([
        'model_mounts_limit', 'model_mounts_problems', 'model_mounts_vm_names', 'model_mounts_declared',
        'model_mounts_volume_args', 'model_mounts_by_vm', 'model_mounts_mount_args', 'model_mounts_undeclared',
        'model_mounts_summary', 'model_mounts_summary_lines', 'model_mounts_report_lines'])
    assert filters['model_mounts_problems'] is mm.model_mounts_problems


@pytest.mark.parametrize('value, expected', [
    (' vm1, ,vm2 ,', ['vm1', 'vm2']),
    ('', []),
    ([' vm1', '', 'vm3'], ['vm1', 'vm3']),
    ([], []),
    (None, []),
])
def test_limit(value, expected):
    assert mm.model_mounts_limit(value) == expected


def test_problems_none():
    assert mm.model_mounts_problems({}, {}, {}) == []
    assert mm.model_mounts_problems({'vm1': ['a', {'model': 'b'}], 'vm2': []}, CATALOG, VOLUMES) == []


@pytest.mark.parametrize('entries', ['a', {'model': 'a'}, 7, None])
def test_problems_not_a_list(entries):
    assert mm.model_mounts_problems({'vm1': entries}, CATALOG, VOLUMES) == ['model_mounts_vms[vm1] must be a list of models']


@pytest.mark.parametrize('entry', ['', {'model': ''}, {'mount_path': '/x'}, {'model': None}, {'model': 5}, 5, None, ['a']])
def test_problems_no_model_name(entry):
    assert mm.model_mounts_problems({'vm1': [entry]}, CATALOG, VOLUMES) == ['an entry of model_mounts_vms[vm1] has no model name']


def test_problems_not_in_catalog():
    assert mm.model_mounts_problems({'vm1': ['zz']}, CATALOG, VOLUMES) == ['model zz of VM vm1 is not in model_mounts_catalog']


def test_problems_declared_twice():
    assert mm.model_mounts_problems({'vm1': ['a', {'model': 'a', 'mount_path': '/m'}, 'a']}, CATALOG, VOLUMES) == [
        'model a is declared twice for VM vm1', 'model a is declared twice for VM vm1']
    # the same model on two VMs is fine
    assert mm.model_mounts_problems({'vm1': ['a'], 'vm2': ['a']}, CATALOG, VOLUMES) == []


@pytest.mark.parametrize('item', [{'volume': 'v1'}, {'volume': 'v1', 'source_path': ''}, 'notamapping', None])
def test_problems_catalog_source_path(item):
    assert mm.model_mounts_problems({}, {'m': item}, VOLUMES) == ['model_mounts_catalog[m] needs a source_path']


@pytest.mark.parametrize('item, shown', [
    ({'source_path': '/s'}, 'none'),
    ({'source_path': '/s', 'volume': 'v2'}, 'v2'),
    ({'source_path': '/s', 'volume': None}, 'None'),
    ({'source_path': '/s', 'volume': ['v1']}, "['v1']"),
])
def test_problems_catalog_volume(item, shown):
    assert mm.model_mounts_problems({}, {'m': item}, VOLUMES) == ['the volume of model m (%s) is not in model_mounts_volumes' % shown]


def test_problems_order():
    vms = {'vm1': ['a', 'zz', '', 'a'], 'vm2': 'a'}
    catalog = dict(CATALOG, d={'volume': 'v9', 'source_path': '/d'}, e={})
    assert mm.model_mounts_problems(vms, catalog, VOLUMES) == [
        'model zz of VM vm1 is not in model_mounts_catalog',
        'an entry of model_mounts_vms[vm1] has no model name',
        'model a is declared twice for VM vm1',
        'model_mounts_vms[vm2] must be a list of models',
        'the volume of model d (v9) is not in model_mounts_volumes',
        'model_mounts_catalog[e] needs a source_path',
    ]


def test_vm_names():
    vms = {'vm1': [], 'vm2': [], 'vm3': []}
    assert mm.model_mounts_vm_names(vms, []) == ['vm1', 'vm2', 'vm3']
    assert mm.model_mounts_vm_names(vms) == ['vm1', 'vm2', 'vm3']
    assert mm.model_mounts_vm_names(vms, ['vm3', 'vm1', 'nope']) == ['vm1', 'vm3']


def _mount(vm, model, volume, source_path, mount_path, read_only):
    return {'vm': vm, 'model': model, 'volume': volume, 'source_path': source_path, 'mount_path': mount_path, 'read_only': read_only}


def test_declared_defaults():
    vms = {
        'vm1': ['a', 'b', 'c'],
        'vm2': [{'model': 'a', 'mount_path': '/ea', 'read_only': 'true'}, {'model': 'b', 'mount_path': None}, {'model': 'c', 'read_only': 'no'}],
        'vm3': [],
    }
    assert mm.model_mounts_declared(vms, CATALOG, [], False) == [
        _mount('vm1', 'a', 'v1', '/a', None, False),
        _mount('vm1', 'b', 'v1', '/b', '/cb', True),
        _mount('vm1', 'c', 'v1', '/c', '/cc', False),
        _mount('vm2', 'a', 'v1', '/a', '/ea', True),
        _mount('vm2', 'b', 'v1', '/b', None, True),
        _mount('vm2', 'c', 'v1', '/c', '/cc', False),
    ]
    assert mm.model_mounts_declared({'vm1': ['a']}, CATALOG, [], 'on') == [_mount('vm1', 'a', 'v1', '/a', None, True)]


def test_declared_limit():
    vms = {'vm1': ['a'], 'vm2': ['b']}
    assert mm.model_mounts_declared(vms, CATALOG, ['vm2']) == [_mount('vm2', 'b', 'v1', '/b', '/cb', True)]
    assert mm.model_mounts_declared(vms, CATALOG, ['nope']) == []


KEYS = ['meta_url', 'meta_password', 'mount_root', 'cache_dir', 'cache_size', 'client_path']


def test_volume_args_inventory_keys():
    volumes = {'v1': {'meta_url': 'redis://x', 'meta_password': None, 'cache_dir': '/c', 'bogus': 1, 'mount_root': None}}
    assert mm.model_mounts_volume_args('v1', volumes, '', {}, KEYS) == {'name': 'v1', 'meta_url': 'redis://x', 'cache_dir': '/c'}


def test_volume_args_mount_root():
    assert mm.model_mounts_volume_args('v1', {'v1': None}, '/srv/r', {}, KEYS) == {'name': 'v1', 'mount_root': '/srv/r'}
    # the volume's own mount_root wins
    assert mm.model_mounts_volume_args('v1', {'v1': {'mount_root': '/own'}}, '/srv/r', {}, KEYS) == {'name': 'v1', 'mount_root': '/own'}


def test_volume_args_env():
    env = {'meta_url': 'redis://env', 'meta_password': 'envpw'}
    # the inventory's values win over the environment's
    assert mm.model_mounts_volume_args('v1', {'v1': {'meta_password': 'invpw'}}, '', env, KEYS) == {
        'name': 'v1', 'meta_url': 'redis://env', 'meta_password': 'invpw'}
    assert mm.model_mounts_volume_args('v1', {'v1': {'meta_password': None}}, '', env, KEYS) == dict(env, name='v1')


DECLARED = [{'vm': 'vm1', 'model': 'a'}, {'vm': 'vm2', 'model': 'b'}]
SKIPPED = {'skipped': True, 'changed': False}


def test_undeclared_declared_scope():
    info = {'results': [
        {'item': 'vm1', 'mounts': [{'vm': 'VM1', 'model': 'a', 'mount_path': '/a'}, {'vm': 'VM1', 'model': 'b', 'mount_path': '/b'}]},
        {'item': 'vm2', 'mounts': []},
        {'item': 'vm3', 'mounts': [{'vm': 'vm3', 'model': 'c', 'mount_path': '/c'}]},
    ]}
    # named by the VM as declared, not as libvirt names it
    assert mm.model_mounts_undeclared(DECLARED, 'declared', info, SKIPPED, []) == [
        {'vm': 'vm1', 'model': 'b', 'mount_path': '/b'}, {'vm': 'vm3', 'model': 'c', 'mount_path': '/c'}]
    assert mm.model_mounts_undeclared([], 'declared', {'results': []}, SKIPPED, []) == []


def test_undeclared_host_scope():
    info = {'mounts': [
        {'vm': 'vm1', 'model': 'a', 'mount_path': '/a'},
        {'vm': 'vm1', 'model': 'b', 'mount_path': '/b'},
        {'vm': 'vm2', 'model': 'b', 'mount_path': '/b'},
        {'vm': 'vm9', 'model': 'z', 'mount_path': '/z'},
    ]}
    assert mm.model_mounts_undeclared(DECLARED, 'host', SKIPPED, info, []) == [
        {'vm': 'vm1', 'model': 'b', 'mount_path': '/b'}, {'vm': 'vm9', 'model': 'z', 'mount_path': '/z'}]
    assert mm.model_mounts_undeclared(DECLARED, 'host', SKIPPED, info, ['vm1']) == [{'vm': 'vm1', 'model': 'b', 'mount_path': '/b'}]


def _r(vm, model, **kwargs):
    return dict(kwargs, item={'vm': vm, 'model': model})


def test_summary():
    mounted = {'results': [
        _r('vm1', 'a', changed=True, mount={'status': 'mounted'}),
        _r('vm1', 'b', changed=False, mount={'status': 'mounted'}),
        _r('vm1', 'c', changed=True, mount={'status': 'pending'}),
        _r('vm2', 'd', failed=True, changed=False, msg='boom'),
        _r('vm2', 'e', failed=True, changed=True, mount={'status': 'pending'}),
        _r('vm2', 'f', skipped=True, changed=False),
        _r('vm3', 'g', changed=False),
    ]}
    unmounted = {'results': [
        _r('vm1', 'x', changed=True),
        _r('vm4', 'y', changed=True),
        _r('vm4', 'z', changed=False),
        _r('vm5', 'w', failed=True),
        _r('vm6', 's', skipped=True),
    ]}
    empty = {'mounted': [], 'unmounted': [], 'unchanged': [], 'pending': [], 'failed': [], 'errors': []}
    summary = mm.model_mounts_summary(mounted, unmounted, ['vm1', 'vm2', 'vm3'])
    assert list(summary) == ['vm1', 'vm2', 'vm3', 'vm4', 'vm5']
    # vm5's unmount failed: the exclusive step failed, so the mount loop did not run (these results are made up to
    # show that a VM with a failure of its own is not also called not converged).
    assert summary == {
        'vm1': dict(empty, mounted=['a', 'c'], unmounted=['x'], unchanged=['b'], pending=['c'], errors=[mm.NOT_CONVERGED]),
        'vm2': dict(empty, pending=['e'], failed=['d', 'e']),
        'vm3': dict(empty, unchanged=['g'], errors=[mm.NOT_CONVERGED]),
        'vm4': dict(empty, unmounted=['y'], errors=[mm.NOT_CONVERGED]),
        'vm5': dict(empty, failed=['w']),
    }


EMPTY = {'mounted': [], 'unmounted': [], 'unchanged': [], 'pending': [], 'failed': [], 'errors': []}


def test_summary_marks_the_vm_whose_records_could_not_be_read():
    # The exclusive step's read of vm2's records failed (a loop over the declared VM names): the mount loop and the
    # unmount loop never ran (their registered results are still the role's empty ones).
    declared = {'failed': True, 'results': [
        {'item': 'vm1', 'mounts': [], 'changed': False},
        {'item': 'vm2', 'failed': True, 'msg': 'VM vm2: the guest agent does not answer'},
    ]}
    summary = mm.model_mounts_summary({'results': []}, {'results': []}, ['vm1', 'vm2'], [declared, {}])
    assert summary == {
        'vm1': dict(EMPTY, errors=[mm.NOT_CONVERGED]),
        'vm2': dict(EMPTY, errors=['reading its mount records failed: VM vm2: the guest agent does not answer']),
    }
    assert mm.model_mounts_summary_lines(summary) == [
        'vm1: mounted []; unmounted []; unchanged []; FAILED (%s)' % mm.NOT_CONVERGED,
        'vm2: mounted []; unmounted []; unchanged []; FAILED (reading its mount records failed: VM vm2: the guest '
        'agent does not answer)',
    ]


def test_summary_marks_every_vm_when_the_records_of_the_hypervisor_could_not_be_read():
    host = {'failed': True, 'msg': 'cannot connect to libvirt'}
    skipped = {'skipped': True, 'results': [{'item': 'vm1', 'skipped': True}, {'item': 'vm2', 'skipped': True}]}
    summary = mm.model_mounts_summary({'results': []}, {'results': []}, ['vm1', 'vm2'], [skipped, host])
    assert summary == {
        'vm1': dict(EMPTY, errors=['reading its mount records failed: cannot connect to libvirt']),
        'vm2': dict(EMPTY, errors=['reading its mount records failed: cannot connect to libvirt']),
    }


def test_summary_without_a_failed_step_has_no_errors():
    declared = {'results': [{'item': 'vm1', 'mounts': [], 'changed': False}]}
    mounted = {'results': [_r('vm1', 'a', changed=True, mount={'status': 'mounted'})]}
    assert mm.model_mounts_summary(mounted, {'results': []}, ['vm1'], [declared, {}]) == {
        'vm1': dict(EMPTY, mounted=['a'])}


def test_summary_empty():
    assert mm.model_mounts_summary({'results': []}, {'results': []}, []) == {}
    assert mm.model_mounts_summary({'results': []}, SKIPPED, None) == {}
    assert mm.model_mounts_summary({'results': []}, {'results': []}, ['vm1']) == {
        'vm1': {'mounted': [], 'unmounted': [], 'unchanged': [], 'pending': [], 'failed': [], 'errors': []}}


SUMMARY = {
    'vm1': {'mounted': ['a', 'b'], 'unmounted': ['x'], 'unchanged': [], 'pending': ['b'], 'failed': []},
    'vm2': {'mounted': [], 'unmounted': [], 'unchanged': ['c'], 'pending': [], 'failed': ['d', 'e']},
    'vm3': {'mounted': [], 'unmounted': [], 'unchanged': [], 'pending': [], 'failed': []},
}


def test_summary_lines():
    assert mm.model_mounts_summary_lines(SUMMARY, False) == [
        'vm1: mounted [a, b]; unmounted [x]; unchanged []; pending [b]',
        'vm2: mounted []; unmounted []; unchanged [c]; FAILED [d, e]',
        'vm3: mounted []; unmounted []; unchanged []',
    ]


def test_summary_lines_check_mode():
    assert mm.model_mounts_summary_lines({'vm3': SUMMARY['vm3']}, True) == ['vm3 (check mode): mounted []; unmounted []; unchanged []']


def test_summary_lines_nothing():
    assert mm.model_mounts_summary_lines({}, False) == ['nothing declared for this hypervisor']
    assert mm.model_mounts_summary_lines({}, True) == ['nothing declared for this hypervisor']


def _m(vm, model, status, mount_path, volume, source_path, read_only, reasons):
    return {'vm': vm, 'model': model, 'status': status, 'mount_path': mount_path, 'volume': volume,
            'source_path': source_path, 'read_only': read_only, 'reasons': reasons}


HEADER = 'HYPERVISOR  VM   MODEL        STATUS       MOUNT PATH  VOLUME:SOURCE  MODE  REASONS'


def test_report_lines():
    hostvars = {
        'hv-b': {'aimodel_report_info': {
            'mounts': [_m('vm2', 'm-long-name', 'mounted', '/models/m', 'v1', '/src/m', True, []),
                       _m('vm1', 'a', 'degraded', '/models/a', 'v1', '/a', False, ['no_device', 'stale'])],
            'orphans': [{'vm': 'vm1', 'kind': 'device', 'tag': 'aim-x', 'where': '/x'},
                        {'kind': 'record', 'vm': 'vm2', 'tag': 'aim-y', 'source': '/s', 'where': '/y'}]}},
        'hv-a': {'aimodel_report_info': {'mounts': [_m('vmz', 'q', 'pending', '/q', 'vol', '/srcq', True, ['waiting'])], 'orphans': []}},
        'hv-c': {},
        'hv-d': {'aimodel_report_info': {'failed': True, 'msg': 'no libvirt'}},
    }
    assert mm.model_mounts_report_lines(['hv-b', 'hv-a', 'hv-c', 'hv-d'], hostvars) == [
        HEADER,
        'hv-a        vmz  q            pending      /q          vol:/srcq      ro    waiting',
        'hv-b        vm1  a            degraded     /models/a   v1:/a          rw    no_device,stale',
        'hv-b        vm2  m-long-name  mounted      /models/m   v1:/src/m      ro    -',
        'hv-c        -    -            unreachable  -           -              -     no answer from the hypervisor',
        'hv-d        -    -            unreachable  -           -              -     no answer from the hypervisor',
        '',
        'HYPERVISOR  VM   ORPHAN  TAG    WHERE  SOURCE',
        'hv-b        vm1  device  aim-x  /x     -',
        'hv-b        vm2  record  aim-y  /y     /s',
        '',
        'HYPERVISOR  NO ANSWER',
        'hv-c        no result: the host did not run the task',
        'hv-d        no libvirt',
    ]


def test_report_lines_of_hosts_that_did_not_answer():
    hostvars = {
        'hv-a': {'aimodel_report_info': {'mounts': [], 'orphans': [], 'changed': False, 'failed': False}},
        'hv-b': {'aimodel_report_info': {'failed': False, 'msg': 'The libvirt Python binding\n(libvirt-python) is missing'}},
        'hv-c': {'aimodel_report_info': {'unreachable': True, 'msg': 'Failed to connect to the host via ssh'}},
        'hv-d': {'aimodel_report_info': {'failed': True, 'msg': 'x' * 400}},
    }
    lines = mm.model_mounts_report_lines(['hv-a', 'hv-b', 'hv-c', 'hv-d'], hostvars)
    assert lines[-5:] == [
        '',
        'HYPERVISOR  NO ANSWER',
        'hv-b        The libvirt Python binding (libvirt-python) is missing',
        'hv-c        unreachable: Failed to connect to the host via ssh',
        'hv-d        ' + 'x' * 297 + '...',
    ]
    assert not any(line.startswith('hv-a') for line in lines)


def test_report_lines_no_mounts():
    hostvars = {'hv-a': {'aimodel_report_info': {'mounts': [], 'orphans': []}}}
    assert mm.model_mounts_report_lines(['hv-a'], hostvars) == [
        'HYPERVISOR  VM  MODEL  STATUS  MOUNT PATH  VOLUME:SOURCE  MODE  REASONS', '(no mounts recorded)']
    assert mm.model_mounts_report_lines([], {}) == [
        'HYPERVISOR  VM  MODEL  STATUS  MOUNT PATH  VOLUME:SOURCE  MODE  REASONS', '(no mounts recorded)']


def test_report_lines_orphans_only():
    hostvars = {'hv-a': {'aimodel_report_info': {'mounts': [], 'orphans': [{'vm': 'vm1', 'kind': 'device', 'tag': 't', 'where': 'w', 'source': 's'}]}}}
    assert mm.model_mounts_report_lines(['hv-a'], hostvars) == [
        'HYPERVISOR  VM  MODEL  STATUS  MOUNT PATH  VOLUME:SOURCE  MODE  REASONS',
        '(no mounts recorded)',
        '',
        'HYPERVISOR  VM   ORPHAN  TAG  WHERE  SOURCE',
        'hv-a        vm1  device  t    w      s',
    ]


# --- one vm_model_mounts run per VM --------------------------------------------------------------------

SET_DECLARED = [
    {'vm': 'a', 'model': 'm1', 'volume': 'v', 'source_path': 'models/m1', 'mount_path': None, 'read_only': True},
    {'vm': 'b', 'model': 'm2', 'volume': 'v', 'source_path': 'models/m2', 'mount_path': '/srv/m2', 'read_only': False},
    {'vm': 'a', 'model': 'm3', 'volume': 'w', 'source_path': 'models/m3', 'mount_path': None, 'read_only': True},
]


def test_by_vm_groups_the_declared_mounts_in_the_order_of_the_vms():
    out = mm.model_mounts_by_vm(SET_DECLARED, ['b', 'a', 'c'])
    assert [(e['vm'], [m['model'] for m in e['mounts']]) for e in out] == [('b', ['m2']), ('a', ['m1', 'm3']), ('c', [])]
    assert out[0]['mounts'][0] == {'model': 'm2', 'volume': 'v', 'source_path': 'models/m2', 'mount_path': '/srv/m2',
                                   'read_only': False}


def test_mount_args_give_each_mount_its_volume_option():
    mounts = mm.model_mounts_by_vm(SET_DECLARED, ['a'])[0]['mounts']
    out = mm.model_mounts_mount_args(mounts, {'v': {'meta_url': 'redis://h/1', 'other': 1}}, '/mnt/vols',
                                     {'meta_password': 'pw'}, ['meta_url'])
    assert out[0]['volume'] == {'name': 'v', 'mount_root': '/mnt/vols', 'meta_password': 'pw', 'meta_url': 'redis://h/1'}
    assert out[1]['volume'] == {'name': 'w', 'mount_root': '/mnt/vols', 'meta_password': 'pw'}
    assert mounts[0]['volume'] == 'v', 'the loop items keep the names'


def set_result(vm, models, **extra):
    return dict({'item': {'vm': vm, 'mounts': [{'model': m} for m in models]}}, **extra)


def test_summary_of_set_runs():
    mounted = {'results': [
        set_result('a', ['m1', 'm3'], changed=True, unmounted=['old'], mounts=[
            {'model': 'm1', 'changed': True, 'mount': {'status': 'mounted'}},
            {'model': 'm3', 'changed': False, 'mount': {'status': 'pending'}}]),
        set_result('b', ['m2', 'm4'], failed=True, model='m4', msg='mounts[1] (model m4): boom'),
        set_result('c', [], skipped=True),
    ]}
    summary = mm.model_mounts_summary(mounted, {'results': []}, ['a', 'b', 'c'])
    assert summary['a'] == {'mounted': ['m1'], 'unmounted': ['old'], 'unchanged': ['m3'], 'pending': ['m3'],
                            'failed': [], 'errors': []}
    assert summary['b']['failed'] == ['m4'] and summary['b']['errors'] == [mm.ROLLED_BACK]
    assert summary['c'] == {'mounted': [], 'unmounted': [], 'unchanged': [], 'pending': [], 'failed': [], 'errors': []}


def test_summary_of_the_unmounts_of_undeclared_vms():
    unmounted = {'results': [{'item': 'x', 'changed': True, 'mounts': [], 'unmounted': ['m1', 'm2']},
                             {'item': 'y', 'failed': True, 'msg': 'busy'}]}
    summary = mm.model_mounts_summary({'results': []}, unmounted, ['a'])
    assert summary['x']['unmounted'] == ['m1', 'm2']
    assert summary['y']['errors'] == ['busy'], 'its run failed before any model: its message'
    assert summary['a']['errors'] == [mm.NOT_CONVERGED], 'the role stopped before the declared VMs'
