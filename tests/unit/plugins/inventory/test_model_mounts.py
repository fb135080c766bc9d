# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The inventory plugin aimodel.kvm.model_mounts, loaded as Ansible loads it, on fake hypervisors: the one boundary
replaced is ``model_mounts.open_hypervisor`` (a read-only libvirt connection), which gives fake connections of fake
domains whose metadata the collection's own record renderer wrote."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import threading

import pytest
import yaml

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader

from ansible_collections.aimodel.kvm.plugins.inventory import model_mounts
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _record
from ansible_collections.aimodel.kvm.tests.unit.plugins.fakes import RECORD, FakeConnection, FakeDomain

MINILM = 'all-minilm-l6-v2'


def record(model, **fields):
    rec = dict(RECORD, model=model, tag='aim-%s' % model, source_path='models/%s' % model,
               mount_path='/mnt/models/%s' % model, volume_uuid='0b1e4c2a-5d1f-4e2b-9a5e-3f1c2d3e4f50',
               meta_url='redis://10.0.0.5:6379/1')
    rec.update(fields)
    return rec


def vm(name, uuid, active=True, live=None, config=None):
    """A fake domain; ``live``/``config``: the records of its live and persistent metadata (lists of records)."""
    dom = FakeDomain(name=name, uuid=uuid, active=active)
    if live is not None:
        dom.meta['live'] = _record.render(dict((r['model'], r) for r in live))
    if config is not None:
        dom.meta['config'] = _record.render(dict((r['model'], r) for r in config))
    return dom


def uuid(number):
    return '00000000-0000-4000-8000-%012d' % number


class Warnings:
    def __init__(self):
        self.messages = []

    def warning(self, msg, *_args, **_kwargs):
        self.messages.append(msg)

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class Fleet:
    """Fake hypervisors by URI: a FakeConnection, or an exception to raise, or a threading.Event to wait for."""

    def __init__(self, monkeypatch):
        self.by_uri = {}
        self.opened = []
        monkeypatch.setattr(model_mounts, 'open_hypervisor', self.open)
        monkeypatch.setattr(_libvirt, 'HAS_LIBVIRT', True)

    def open(self, uri):
        self.opened.append(uri)
        found = self.by_uri[uri]
        if isinstance(found, Exception):
            raise found
        if isinstance(found, threading.Event):
            found.wait(30)
            raise model_mounts.HypervisorError('cannot connect to libvirt at %s: released' % uri)
        return found


HV = [{'name': 'hv1', 'uri': 'qemu+ssh://root@hv1.example.com/system'},
      {'name': 'hv2', 'uri': 'qemu+tls://hv2.example.com/system'},
      {'name': 'local', 'uri': 'qemu:///system'}]


@pytest.fixture
def fleet(monkeypatch):
    return Fleet(monkeypatch)


@pytest.fixture
def warnings(monkeypatch):
    recorder = Warnings()
    monkeypatch.setattr(model_mounts, 'display', recorder)
    return recorder


@pytest.fixture
def inventory(tmp_path):
    """parse(config, cache=True) -> the InventoryData, the plugin loaded by Ansible's inventory loader."""
    def parse(config, cache=True, name='fleet.aimodel.yml'):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(dict({'plugin': 'aimodel.kvm.model_mounts'}, **config)))
        plugin = inventory_loader.get('aimodel.kvm.model_mounts')
        assert plugin.verify_file(str(path))
        data = InventoryData()
        plugin.parse(data, DataLoader(), str(path), cache=cache)
        # What Ansible's InventoryManager does after each parse.
        try:
            plugin.update_cache_if_changed()
        except AttributeError:
            pass
        return data
    return parse


def three_hypervisors(fleet):
    fleet.by_uri[HV[0]['uri']] = FakeConnection(
        vm('inference-01', uuid(1), live=[record(MINILM), record('bge-small', read_only=False, device='aimodel-rw')],
           config=[record(MINILM)]),
        vm('batch-01', uuid(2), active=False, config=[record(MINILM, mount_path='/srv/minilm')]))
    fleet.by_uri[HV[1]['uri']] = FakeConnection(vm('plain', uuid(3)))
    fleet.by_uri[HV[2]['uri']] = FakeConnection(vm('inference-02', uuid(4), live=[record('bge-small')]))


def hostvars(data, host):
    return data.get_host(host).get_vars()


def members(data, group):
    return sorted(h.name for h in data.groups[group].get_hosts())


# --- hosts, host variables, groups ---------------------------------------------------------------

def test_every_vm_of_every_hypervisor_is_a_host_with_its_recorded_mounts(fleet, warnings, inventory):
    three_hypervisors(fleet)
    data = inventory({'hypervisors': HV})
    assert sorted(data.hosts) == ['batch-01', 'inference-01', 'inference-02', 'plain']
    running = hostvars(data, 'inference-01')
    assert running['aimodel_vm'] == 'inference-01'
    assert running['aimodel_uuid'] == uuid(1)
    assert running['aimodel_state'] == 'running'
    assert running['aimodel_hypervisor'] == {'name': 'hv1', 'uri': HV[0]['uri']}
    assert running['aimodel_models'] == ['all-minilm-l6-v2', 'bge-small']
    assert running['aimodel_record_error'] is None
    # The live record of a running VM, as recorded; the metadata engine's URL is not a host variable.
    assert running['aimodel_mounts'] == [
        {'model': MINILM, 'volume': 'v', 'volume_uuid': '0b1e4c2a-5d1f-4e2b-9a5e-3f1c2d3e4f50',
         'source_path': 'models/all-minilm-l6-v2', 'mount_path': '/mnt/models/all-minilm-l6-v2', 'read_only': True,
         'device': 'aimodel-ro', 'tag': 'aim-all-minilm-l6-v2', 'status': 'recorded'},
        {'model': 'bge-small', 'volume': 'v', 'volume_uuid': '0b1e4c2a-5d1f-4e2b-9a5e-3f1c2d3e4f50',
         'source_path': 'models/bge-small', 'mount_path': '/mnt/models/bge-small', 'read_only': False,
         'device': 'aimodel-rw', 'tag': 'aim-bge-small', 'status': 'recorded'}]
    assert 'redis://' not in repr(dict(running))
    # A stopped VM: its persistent record, pending.
    stopped = hostvars(data, 'batch-01')
    assert stopped['aimodel_state'] == 'shut off'
    assert [(m['model'], m['mount_path'], m['status']) for m in stopped['aimodel_mounts']] == \
        [(MINILM, '/srv/minilm', 'pending')]
    plain = hostvars(data, 'plain')
    assert plain['aimodel_mounts'] == [] and plain['aimodel_models'] == []
    # No connection variables: these hosts are for reports and limits.
    assert not [k for k in running if k.startswith('ansible_')]
    assert warnings.messages == []


def test_groups_per_hypervisor_per_model_and_of_the_vms_with_a_model(fleet, warnings, inventory):
    three_hypervisors(fleet)
    data = inventory({'hypervisors': HV})
    assert members(data, 'hypervisor_hv1') == ['batch-01', 'inference-01']
    assert members(data, 'hypervisor_hv2') == ['plain']
    assert members(data, 'hypervisor_local') == ['inference-02']
    # all-minilm-l6-v2 sanitized as Ansible sanitizes group names; stopped VMs count (their mount is pending).
    assert members(data, 'model_all_minilm_l6_v2') == ['batch-01', 'inference-01']
    assert members(data, 'model_bge_small') == ['inference-01', 'inference-02']
    assert members(data, 'aimodel_mounted') == ['batch-01', 'inference-01', 'inference-02']


def test_a_running_vm_is_reported_from_its_live_record_and_a_stopped_one_from_its_persistent_record(
        fleet, warnings, inventory):
    fleet.by_uri[HV[2]['uri']] = FakeConnection(
        vm('live-only', uuid(1), live=[record('a')], config=[]),
        vm('stopped', uuid(2), active=False, live=[record('ignored')], config=[record('b')]))
    data = inventory({'hypervisors': [HV[2]]})
    assert hostvars(data, 'live-only')['aimodel_models'] == ['a']
    assert hostvars(data, 'stopped')['aimodel_models'] == ['b']
    assert 'model_ignored' not in data.groups


def test_a_detached_record_is_reported_detached_and_in_no_model_group(fleet, warnings, inventory):
    # A migration in progress: the models are out of the VM, their records kept (vm_model_mount state=detached).
    fleet.by_uri[HV[2]['uri']] = FakeConnection(
        vm('moving', uuid(1), live=[record('a', detached='true'), record('b')]),
        vm('all-out', uuid(2), live=[record('c', detached='true')]))
    data = inventory({'hypervisors': [HV[2]]})
    moving = hostvars(data, 'moving')
    assert moving['aimodel_models'] == ['b']
    assert [(m['model'], m['status']) for m in moving['aimodel_mounts']] == [('a', 'detached'), ('b', 'recorded')]
    assert 'model_a' not in data.groups and 'model_c' not in data.groups
    assert members(data, 'aimodel_mounted') == ['moving']
    assert [m['status'] for m in hostvars(data, 'all-out')['aimodel_mounts']] == ['detached']


def test_the_plugin_never_asks_a_guest(fleet, warnings, inventory, monkeypatch):
    dom = vm('vm1', uuid(1), live=[record('a')])

    def no_agent(*_args):
        raise AssertionError('the inventory plugin talked to the guest agent')
    monkeypatch.setattr(dom, 'agent_command', no_agent)
    fleet.by_uri[HV[2]['uri']] = FakeConnection(dom)
    assert hostvars(inventory({'hypervisors': [HV[2]]}), 'vm1')['aimodel_models'] == ['a']


# --- names ---------------------------------------------------------------------------------------

def clashing(fleet):
    fleet.by_uri[HV[0]['uri']] = FakeConnection(vm('web', uuid(1), live=[record('a')]), vm('solo', uuid(2)))
    fleet.by_uri[HV[1]['uri']] = FakeConnection(vm('web', uuid(3), live=[record('b')]))


def test_vms_of_the_same_name_on_two_hypervisors_are_named_after_their_hypervisor_with_a_warning(
        fleet, warnings, inventory):
    clashing(fleet)
    data = inventory({'hypervisors': HV[:2]})
    assert sorted(data.hosts) == ['hv1_web', 'hv2_web', 'solo']
    assert hostvars(data, 'hv1_web')['aimodel_models'] == ['a']
    assert hostvars(data, 'hv2_web')['aimodel_vm'] == 'web'
    assert members(data, 'model_b') == ['hv2_web']
    assert len(warnings.messages) == 1
    assert 'the VM name web is on hypervisors hv1, hv2: its hosts are named hv1_web, hv2_web' in warnings.messages[0]


def test_host_name_hypervisor_name_and_uuid(fleet, warnings, inventory):
    clashing(fleet)
    assert sorted(inventory({'hypervisors': HV[:2], 'host_name': 'hypervisor_name'}).hosts) == \
        ['hv1_solo', 'hv1_web', 'hv2_web']
    assert sorted(inventory({'hypervisors': HV[:2], 'host_name': 'uuid'}).hosts) == [uuid(1), uuid(2), uuid(3)]
    assert warnings.messages == []


def test_one_uuid_on_two_hypervisors_is_named_after_each(fleet, warnings, inventory):
    fleet.by_uri[HV[0]['uri']] = FakeConnection(vm('moving', uuid(1)))
    fleet.by_uri[HV[1]['uri']] = FakeConnection(vm('moving', uuid(1), active=False))
    data = inventory({'hypervisors': HV[:2], 'host_name': 'uuid'})
    assert sorted(data.hosts) == ['hv1_' + uuid(1), 'hv2_' + uuid(1)]
    assert 'the UUID %s is on hypervisors hv1, hv2' % uuid(1) in warnings.messages[0]


def test_a_name_that_still_clashes_fails_naming_both_vms(fleet, warnings, inventory):
    fleet.by_uri['qemu+ssh://a/system'] = FakeConnection(vm('b_c', uuid(1)))
    fleet.by_uri['qemu+ssh://ab/system'] = FakeConnection(vm('c', uuid(2)))
    with pytest.raises(AnsibleParserError) as err:
        inventory({'hypervisors': [{'name': 'a', 'uri': 'qemu+ssh://a/system'},
                                   {'name': 'a_b', 'uri': 'qemu+ssh://ab/system'}], 'host_name': 'hypervisor_name'})
    msg = str(err.value)
    assert 'the host name a_b_c is both VM b_c (%s) on hypervisor a and VM c (%s) on hypervisor a_b' \
        % (uuid(1), uuid(2)) in msg


# --- hypervisors that do not answer --------------------------------------------------------------

def test_a_hypervisor_that_refuses_is_a_warning_and_the_others_are_listed(fleet, warnings, inventory):
    three_hypervisors(fleet)
    fleet.by_uri[HV[1]['uri']] = model_mounts.HypervisorError(
        'cannot connect to libvirt at %s: Connection refused' % HV[1]['uri'])
    data = inventory({'hypervisors': HV})
    assert sorted(data.hosts) == ['batch-01', 'inference-01', 'inference-02']
    assert members(data, 'hypervisor_hv2') == []
    assert warnings.messages == ['aimodel.kvm.model_mounts: hypervisor hv2 (%s) was not read, its VMs are not listed: '
                                 'cannot connect to libvirt at %s: Connection refused' % (HV[1]['uri'], HV[1]['uri'])]


def test_strict_hypervisors_fails_naming_the_hypervisor(fleet, warnings, inventory):
    three_hypervisors(fleet)
    fleet.by_uri[HV[1]['uri']] = model_mounts.HypervisorError('cannot connect: Connection refused')
    with pytest.raises(AnsibleParserError) as err:
        inventory({'hypervisors': HV, 'strict_hypervisors': True})
    assert '1 of 3 hypervisors could not be read (strict_hypervisors): hv2: cannot connect: Connection refused' \
        in str(err.value)


def test_a_hypervisor_that_does_not_answer_in_time_is_left_behind(fleet, warnings, inventory):
    three_hypervisors(fleet)
    hang = threading.Event()
    fleet.by_uri[HV[0]['uri']] = hang
    try:
        data = inventory({'hypervisors': HV, 'timeout': 0.3, 'max_connections': 1})
    finally:
        hang.set()
    # The one worker was stuck on hv1; another one read the other hypervisors.
    assert sorted(data.hosts) == ['inference-02', 'plain']
    assert warnings.messages == ['aimodel.kvm.model_mounts: hypervisor hv1 (%s) was not read, its VMs are not listed: '
                                 'libvirt at %s did not answer within 0.3 seconds' % (HV[0]['uri'], HV[0]['uri'])]


def test_a_hypervisor_whose_vms_cannot_be_listed_is_a_warning(fleet, warnings, inventory, monkeypatch):
    conn = FakeConnection(vm('x', uuid(1)))

    def broken():
        raise _libvirt.VirtError('cannot list VMs: internal error', 1)
    monkeypatch.setattr(conn, 'domains', broken)
    fleet.by_uri[HV[2]['uri']] = conn
    data = inventory({'hypervisors': [HV[2]]})
    assert list(data.hosts) == []
    assert 'cannot list VMs: internal error' in warnings.messages[0]


# --- records that are not what the modules write -------------------------------------------------

@pytest.mark.parametrize('metadata, reason', [
    ('<mounts><mount model="a"', 'is not valid XML'),
    ('<mounts><mount model="a" read_ahead_kb="lots"/></mounts>', "has read_ahead_kb='lots', not a number"),
    ('<mounts>%s</mounts>' % ('<mount model="a"/>' * 60000), 'more than 1048576'),
], ids=['not-xml', 'bad-number', 'too-large'])
def test_a_record_that_does_not_parse_is_skipped_with_a_warning_and_the_vm_still_listed(
        fleet, warnings, inventory, metadata, reason):
    bad = vm('bad', uuid(1))
    bad.meta['live'] = metadata
    fleet.by_uri[HV[2]['uri']] = FakeConnection(bad, vm('good', uuid(2), live=[record('a')]))
    data = inventory({'hypervisors': [HV[2]]})
    assert sorted(data.hosts) == ['bad', 'good']
    assert hostvars(data, 'bad')['aimodel_mounts'] == []
    assert reason in hostvars(data, 'bad')['aimodel_record_error']
    assert members(data, 'model_a') == ['good']
    assert len(warnings.messages) == 1
    assert warnings.messages[0].startswith('aimodel.kvm.model_mounts: VM bad on hypervisor local: its mount record '
                                           'was skipped: ')
    assert reason in warnings.messages[0]


def test_a_mount_whose_model_is_no_model_name_is_skipped_and_the_others_kept(fleet, warnings, inventory):
    dom = vm('vm1', uuid(1))
    dom.meta['live'] = ('<mounts><mount model="{{ lookup(\'pipe\', \'id\') }}" volume="v"/>'
                        '<mount model="good" volume="v" mount_path="/mnt/g"/></mounts>')
    fleet.by_uri[HV[2]['uri']] = FakeConnection(dom)
    data = inventory({'hypervisors': [HV[2]]})
    assert hostvars(data, 'vm1')['aimodel_models'] == ['good']
    assert len(warnings.messages) == 1
    assert warnings.messages[0].startswith('aimodel.kvm.model_mounts: VM vm1 on hypervisor local: a mount of its '
                                           'record was skipped: model: must start with a letter or digit')


def test_a_warning_quotes_at_most_a_bounded_part_of_the_metadata(fleet, warnings, inventory):
    dom = vm('vm1', uuid(1))
    dom.meta['live'] = '<mounts><mount model="-%s" volume="v"/></mounts>' % ('x' * 100000)
    fleet.by_uri[HV[2]['uri']] = FakeConnection(dom)
    inventory({'hypervisors': [HV[2]]})
    assert len(warnings.messages) == 1 and len(warnings.messages[0]) < 1300
    assert 'must be at most 128 characters' in warnings.messages[0]


def test_recorded_strings_are_not_templated(fleet, warnings, inventory):
    fleet.by_uri[HV[2]['uri']] = FakeConnection(vm('vm1', uuid(1), live=[record('a', volume="{{ 6 * 7 }}")]))
    data = inventory({'hypervisors': [HV[2]], 'compose': {'first_volume': 'aimodel_mounts[0].volume'}})
    assert hostvars(data, 'vm1')['first_volume'] == '{{ 6 * 7 }}'


def test_the_hypervisor_variables_from_the_source_file_are_not_templates(fleet, warnings, inventory):
    uri = 'qemu+ssh://root@hv1/system?keyfile={{ 6 * 7 }}'
    fleet.by_uri[uri] = FakeConnection(vm('vm1', uuid(1)))
    data = inventory({'hypervisors': [{'name': 'hv1', 'uri': uri}], 'compose': {'hv_uri': 'aimodel_hypervisor.uri'}})
    assert hostvars(data, 'vm1')['hv_uri'] == uri


def test_a_vm_that_cannot_be_read_is_listed_with_its_error_and_one_undefined_meanwhile_is_not(
        fleet, warnings, inventory, monkeypatch):
    broken, gone = vm('broken', uuid(1)), vm('gone', uuid(2))

    def failing(config=False):
        raise _libvirt.VirtError('cannot read the metadata of VM broken: internal error', 1)

    def undefined(config=False):
        raise _libvirt.VirtError('cannot read the metadata of VM gone: Domain not found', _libvirt.ERR_NO_DOMAIN)
    monkeypatch.setattr(broken, 'get_metadata', failing)
    monkeypatch.setattr(gone, 'get_metadata', undefined)
    fleet.by_uri[HV[2]['uri']] = FakeConnection(broken, gone, vm('fine', uuid(3)))
    data = inventory({'hypervisors': [HV[2]]})
    assert sorted(data.hosts) == ['broken', 'fine']
    assert 'internal error' in hostvars(data, 'broken')['aimodel_record_error']
    assert len(warnings.messages) == 1 and 'VM broken on hypervisor local' in warnings.messages[0]


# --- the option hypervisors ----------------------------------------------------------------------

REFUSED = [
    ('qemu+ext:///system?command=/bin/sh', "uses the transport 'ext', which runs the program of its command="),
    ('qemu+tcp://hv1/system', "uses the transport 'tcp', which is unencrypted"),
    ('qemu+ssh://root@hv1/system?command=/bin/evil', 'has the parameter command, which names a program'),
    ('qemu+ssh://root@hv1/system?netcat=/tmp/nc', 'has the parameter netcat, which names a program'),
    ('qemu+ssh://root@hv1/system?socket=/run/other.sock', 'has the parameter socket, which names the socket'),
    ('qemu+ssh://root@hv1/system?keyfile=k&%53ocket=/x', 'has the parameter socket'),
    ('qemu+ssh://root@hv1/system?keyfile=k;COMMAND=x', 'has the parameter command'),
    ('qemu+ssh://root@hv1/system?proxy=netcat', 'has the parameter proxy, which chooses the program'),
    ('qemu+ssh://root@hv1/system?name=lxc:///', "has the parameter name, which chooses another URI"),
    ('qemu+tls://hv1/system?no_verify=1', "has the parameter no_verify, which turns off the check"),
    ('qemu+ssh://root@hv1/system?foo=bar', "has the parameter 'foo': only keyfile, known_hosts"),
    ('lxc:///system', "names the driver 'lxc'"),
    ('xen+ssh://hv1/system', "names the driver 'xen'"),
    ('qemu+ssh://root:secret@hv1/system', 'has a password'),
    ('qemu+ssh:///system', "uses the transport 'ssh' and names no host"),
    ('qemu+unix://hv1/system', 'names a host with the local transport unix'),
    ('qemu+ssh://-oProxyCommand=x/system', 'is not [user@]host[:port]'),
    ('qemu+ssh://root@hv1/', "has the path '/'"),
    ('qemu+ssh://root@hv1/system#x', 'has a fragment'),
    ('hv1', 'is not a libvirt URI'),
    ('qemu+ssh://root@hv1/system\n', 'must not contain NUL, newline or other control characters'),
]


@pytest.mark.parametrize('uri, reason', REFUSED, ids=[u for u, _r in REFUSED])
def test_a_refused_uri_names_the_option_and_the_reason(fleet, warnings, inventory, uri, reason):
    with pytest.raises(AnsibleParserError) as err:
        inventory({'hypervisors': [HV[2], {'name': 'hv1', 'uri': uri}]})
    msg = str(err.value)
    assert msg.startswith('aimodel.kvm.model_mounts: hypervisors[1].uri: '), msg
    assert reason in msg, msg
    assert fleet.opened == []


@pytest.mark.parametrize('uri', [
    'qemu:///system', 'qemu:///session', 'qemu+unix:///system', 'qemu+ssh://root@hv1.example.com/system',
    'qemu+ssh://hv1:2222/system?keyfile=/runner/.ssh/id_ed25519&no_tty=1', 'qemu+libssh2://root@10.0.0.7/system',
    'qemu+libssh://admin@hv1/system?known_hosts=/runner/known_hosts&sshauth=privkey', 'qemu+tls://hv1/system',
    'qemu://hv1.example.com/system?pkipath=/etc/pki/aimodel', 'qemu+ssh://root@[fd00::7]/system',
])
def test_an_accepted_uri(uri):
    assert model_mounts.validate_hypervisor_uri(uri, 'hypervisors[0].uri') == uri


@pytest.mark.parametrize('hypervisors, message', [
    ([], 'hypervisors: must be a non-empty list'),
    (['qemu:///system'], 'hypervisors[0]: must be a dict with name and uri'),
    ([{'name': 'hv1'}], 'hypervisors[0]: has no uri'),
    ([{'name': 'hv1', 'uri': 'qemu:///system', 'user': 'x'}], 'hypervisors[0]: has unknown keys user'),
    ([{'name': 'hv 1', 'uri': 'qemu:///system'}], 'hypervisors[0].name: must start with a letter or digit'),
    ([{'name': 'hv1', 'uri': 'qemu:///system'}, {'name': 'hv1', 'uri': 'qemu+ssh://hv1/system'}],
     "hypervisors[1].name: 'hv1' is also the name of hypervisors[0]"),
    ([{'name': 'hv-1', 'uri': 'qemu:///system'}, {'name': 'hv_1', 'uri': 'qemu+ssh://hv1/system'}],
     "hypervisors[1].name: 'hv_1' and the name of hypervisors[0] are both the group hypervisor_hv_1"),
    ([{'name': 'a', 'uri': 'qemu:///system'}, {'name': 'b', 'uri': 'qemu:///system'}],
     "hypervisors[1].uri: 'qemu:///system' is also the URI of hypervisors[0]"),
])
def test_a_bad_hypervisors_entry_names_the_entry(fleet, warnings, inventory, hypervisors, message):
    with pytest.raises(AnsibleParserError) as err:
        inventory({'hypervisors': hypervisors})
    assert str(err.value).startswith('aimodel.kvm.model_mounts: ' + message), str(err.value)


def test_the_examples_are_accepted(fleet, warnings, inventory):
    for example in yaml.safe_load_all(model_mounts.EXAMPLES):
        model_mounts.validate_hypervisors(example['hypervisors'])


def test_only_files_named_aimodel_yml_are_sources(tmp_path):
    plugin = inventory_loader.get('aimodel.kvm.model_mounts')
    for name, ok in (('fleet.aimodel.yml', True), ('fleet.aimodel.yaml', True), ('fleet.yml', False),
                     ('aimodel.yml.bak', False)):
        path = tmp_path / name
        path.write_text('plugin: aimodel.kvm.model_mounts\n')
        assert plugin.verify_file(str(path)) is ok, name


def test_a_missing_binding_says_how_to_install_it(fleet, warnings, inventory, monkeypatch):
    monkeypatch.setattr(_libvirt, 'HAS_LIBVIRT', False)
    monkeypatch.setattr(_libvirt, 'LIBVIRT_IMPORT_ERROR', "Traceback...\nModuleNotFoundError: No module named 'libvirt'\n")
    with pytest.raises(AnsibleError) as err:
        inventory({'hypervisors': [HV[2]]})
    msg = str(err.value)
    assert 'the libvirt Python binding is missing on the controller' in msg
    assert 'pip install libvirt-python' in msg
    assert "No module named 'libvirt'" in msg
    assert fleet.opened == []


# --- constructed ---------------------------------------------------------------------------------

def test_compose_groups_and_keyed_groups(fleet, warnings, inventory):
    three_hypervisors(fleet)
    data = inventory({
        'hypervisors': HV,
        'compose': {'ansible_host': "aimodel_vm ~ '.vms.example.com'", 'model_count': 'aimodel_models | length'},
        'groups': {'running_with_models': "aimodel_state == 'running' and aimodel_models | length > 0"},
        'keyed_groups': [{'key': 'aimodel_state', 'prefix': 'state'},
                         {'key': "aimodel_mounts | map(attribute='volume') | list", 'prefix': 'volume'}],
    })
    assert hostvars(data, 'inference-01')['ansible_host'] == 'inference-01.vms.example.com'
    assert hostvars(data, 'inference-01')['model_count'] == 2
    assert members(data, 'running_with_models') == ['inference-01', 'inference-02']
    assert members(data, 'state_running') == ['inference-01', 'inference-02', 'plain']
    assert members(data, 'state_shut_off') == ['batch-01']
    assert members(data, 'volume_v') == ['batch-01', 'inference-01', 'inference-02']


# --- cache ---------------------------------------------------------------------------------------

def test_a_cache_hit_reads_no_hypervisor(fleet, warnings, inventory, tmp_path):
    three_hypervisors(fleet)
    fleet.by_uri[HV[1]['uri']] = model_mounts.HypervisorError('cannot connect: Connection refused')
    config = {'hypervisors': HV, 'cache': True, 'cache_plugin': 'ansible.builtin.jsonfile',
              'cache_connection': str(tmp_path / 'cache'), 'cache_timeout': 3600}
    first = inventory(config)
    assert len(fleet.opened) == 3
    fleet.by_uri.clear()   # any connection now fails the test with a KeyError
    second = inventory(config)
    assert len(fleet.opened) == 3
    assert sorted(second.hosts) == sorted(first.hosts) == ['batch-01', 'inference-01', 'inference-02']
    assert hostvars(second, 'inference-01')['aimodel_mounts'] == hostvars(first, 'inference-01')['aimodel_mounts']
    assert members(second, 'model_all_minilm_l6_v2') == ['batch-01', 'inference-01']
    # What was not read is still said, and that it comes from the cache.
    assert warnings.messages[-1].endswith('Connection refused (from the inventory cache)')
    # A refresh (ansible-inventory --flush-cache) reads the hypervisors again.
    three_hypervisors(fleet)
    third = inventory(config, cache=False)
    assert len(fleet.opened) == 6
    assert 'plain' in third.hosts


def test_without_cache_every_parse_reads_the_hypervisors(fleet, warnings, inventory):
    three_hypervisors(fleet)
    inventory({'hypervisors': HV})
    inventory({'hypervisors': HV})
    assert len(fleet.opened) == 6


# --- SSH keys and known hosts from options (what an AWX credential injects) ---------------------

def test_ssh_keyfile_and_known_hosts_are_added_where_the_transport_takes_them(fleet, warnings, inventory, monkeypatch):
    key, known = '/runner/env/tmp x/key', '/runner/env/known_hosts'
    given = {
        'qemu+ssh://root@hv1/system': 'qemu+ssh://root@hv1/system?keyfile=/runner/env/tmp%20x/key',
        'qemu+libssh://root@hv2/system?sshauth=privkey':
            'qemu+libssh://root@hv2/system?sshauth=privkey&keyfile=/runner/env/tmp%20x/key&known_hosts=/runner/env/known_hosts',
        'qemu+libssh2://root@hv3/system?keyfile=/own/key':
            'qemu+libssh2://root@hv3/system?keyfile=/own/key&known_hosts=/runner/env/known_hosts',
        'qemu+tls://hv4/system': 'qemu+tls://hv4/system',
        'qemu:///system': 'qemu:///system',
    }
    for index, uri in enumerate(given.values()):
        fleet.by_uri[uri] = FakeConnection(vm('vm%d' % index, uuid(index)))
    monkeypatch.setenv('AIMODEL_SSH_KEYFILE', key)
    monkeypatch.setenv('AIMODEL_SSH_KNOWN_HOSTS', known)
    data = inventory({'hypervisors': [{'name': 'hv%d' % index, 'uri': uri} for index, uri in enumerate(given)]})
    assert sorted(fleet.opened) == sorted(given.values())
    assert len(data.hosts) == 5 and warnings.messages == []
    # The host variables keep the URI as written.
    assert hostvars(data, 'vm0')['aimodel_hypervisor']['uri'] == 'qemu+ssh://root@hv1/system'


# --- the boundary itself, on libvirt's in-process test driver ----------------------------------

TEST_NODE = '''<node>
  <domain type="test">
    <name>inference-01</name>
    <uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>
    <memory>65536</memory>
    <os><type>hvm</type></os>
    <metadata>%s</metadata>
  </domain>
  <domain type="test">
    <name>tampered</name>
    <uuid>6695eb01-f6a4-8304-79aa-97f2502e1940</uuid>
    <memory>65536</memory>
    <os><type>hvm</type></os>
    <metadata>
      <aimodel:mounts xmlns:aimodel="%s"><aimodel:mount model="m" read_ahead_kb="lots"/></aimodel:mounts>
    </metadata>
  </domain>
</node>
'''


@pytest.mark.skipif(not _libvirt.HAS_LIBVIRT, reason='needs the libvirt Python binding')
def test_open_hypervisor_reads_the_records_through_a_read_only_libvirt_connection(tmp_path):
    written = _record.render({MINILM: record(MINILM)}).replace(
        '<mounts>', '<aimodel:mounts xmlns:aimodel="%s">' % _record.NAMESPACE).replace(
        '<mount ', '<aimodel:mount ').replace('</mounts>', '</aimodel:mounts>')
    node = tmp_path / 'node.xml'
    node.write_text(TEST_NODE % (written, _record.NAMESPACE))
    result = model_mounts.read_hypervisor({'name': 'test', 'uri': 'test://%s' % node})
    assert result['error'] is None
    by_name = dict((v['name'], v) for v in result['vms'])
    assert by_name['inference-01']['state'] == 'running'
    assert [(m['model'], m['mount_path'], m['status']) for m in by_name['inference-01']['mounts']] == \
        [(MINILM, '/mnt/models/all-minilm-l6-v2', 'recorded')]
    assert by_name['tampered']['mounts'] == [] and 'not a number' in by_name['tampered']['record_error']
    assert result['warnings'] == ['VM tampered on hypervisor test: its mount record was skipped: %s'
                                  % by_name['tampered']['record_error']]


@pytest.mark.skipif(not _libvirt.HAS_LIBVIRT, reason='needs the libvirt Python binding')
def test_open_hypervisor_reports_a_libvirt_that_cannot_be_reached():
    with pytest.raises(model_mounts.HypervisorError) as err:
        model_mounts.open_hypervisor('qemu+tls://127.0.0.1:1/system')
    assert str(err.value).startswith('cannot connect to libvirt at qemu+tls://127.0.0.1:1/system: ')
