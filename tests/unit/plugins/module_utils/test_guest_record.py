# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _record
from ansible_collections.aimodel.kvm.plugins.module_utils import _state
from ansible_collections.aimodel.kvm.tests.unit.plugins.fakes import FakeDomain

FSTAB = '# comment\n/dev/vda /persist ext4 rw 0 0\naim-a-1 /mnt/a virtiofs ro,nofail 0 0\n'


def mounted_domain():
    """A fake VM with model m recorded, attached live and persistent, mounted in the guest and in its fstab."""
    dom = FakeDomain()
    rec = {'model': 'm', 'volume': 'v', 'source_path': 'models/m', 'mount_path': '/mnt/m', 'tag': 'aim-m-1',
           'read_only': True, 'persist': True, 'guest_mount': True, 'cache': 'auto'}
    dom.meta['live'] = dom.meta['config'] = _record.render({'m': rec})
    dom.live = [('aim-m-1', '/src')]
    dom.config = [('aim-m-1', '/src')]
    dom.guest.mounts.append(('aim-m-1', '/mnt/m', 'virtiofs', 'ro'))
    dom.guest.files['/etc/fstab'] += 'aim-m-1 /mnt/m virtiofs ro,nofail 0 0\n'
    return dom


def test_fstab_edit():
    line = _guest.fstab_line('aim-b-2', '/mnt/b', True)
    assert line == 'aim-b-2 /mnt/b virtiofs ro,nofail 0 0'
    added = _guest.fstab_with(FSTAB, 'aim-b-2', line)
    assert added.endswith(line + '\n') and '# comment' in added
    assert _guest.fstab_find(added, 'aim-b-2') == line
    replaced = _guest.fstab_with(added, 'aim-a-1', 'aim-a-1 /srv/a virtiofs ro,nofail 0 0')
    assert replaced.count('aim-a-1') == 1 and '/srv/a' in replaced
    removed = _guest.fstab_without(replaced, 'aim-a-1')
    assert 'aim-a-1' not in removed and '/dev/vda /persist' in removed
    assert _guest.fstab_without('', 'x') == ''
    assert _guest.fstab_find('#aim-a-1 /x virtiofs ro 0 0\n', 'aim-a-1') is None


def test_parse_mountinfo_unescapes():
    mounts = _guest.parse_mountinfo('28 1 0:24 / /mnt/with\\040space ro,relatime shared:5 - virtiofs aim-a rw\n'
                                    '3 1 0:3 / /proc rw - proc proc rw\n'
                                    'garbage line\n')
    assert mounts[0] == {'id': '28', 'dev': '0:24', 'source': 'aim-a', 'target': '/mnt/with space', 'fstype': 'virtiofs',
                         'options': ['ro', 'relatime'], 'super_options': ['rw']}
    assert len(mounts) == 2 and mounts[1]['target'] == '/proc'


def test_agent_round_trips_and_errors():
    dom = FakeDomain()
    agent = _guest.Agent(dom)
    result = agent.run(['cat', '/etc/fstab'])
    assert result.rc == 0 and '/persist' in result.out
    assert agent.round_trips == 2
    assert agent.read_file('/nope') is None
    dom.guest.reachable = False
    try:
        agent.mounts()
    except _guest.GuestError as exc:
        assert exc.unreachable and 'vm1' in str(exc)
    else:
        raise AssertionError('no error')


def test_write_file_keeps_other_content():
    dom = FakeDomain()
    agent = _guest.Agent(dom)
    agent.write_file('/etc/fstab', 'x\n')
    assert dom.guest.files['/etc/fstab'] == 'x\n'
    assert not [f for f in dom.guest.files if 'aimodel-tmp' in f]
    # One guest process: the path is an argument of a constant script, the content its standard input.
    assert dom.guest.argvs == [['sh', '-c', _guest.REPLACE_FILE_SCRIPT, 'sh', '/etc/fstab']]


def test_write_file_failure_names_the_path():
    dom = FakeDomain()
    dom.guest.read_only_files.add('/etc/fstab')
    agent = _guest.Agent(dom)
    try:
        agent.write_file('/etc/fstab', 'x\n')
    except _guest.GuestError as exc:
        assert 'replacing /etc/fstab failed in VM vm1' in str(exc) and 'Read-only' in str(exc)
    else:
        raise AssertionError('no error')


def test_record_round_trip():
    rec = {'model': 'm', 'volume': 'v', 'source_path': 'models/m', 'mount_path': '/mnt/m', 'tag': 'aim-m-1',
           'read_only': False, 'persist': True, 'guest_mount': True, 'cache': 'auto', 'read_ahead_kb': 1024,
           'created': 't', 'updated': 't'}
    parsed = _record.parse(_record.render({'m': rec}))
    assert parsed == {'m': rec}
    # A record written before read_ahead_kb existed reads as None (and differs from any desired value).
    old = dict(rec)
    del old['read_ahead_kb']
    assert _record.parse(_record.render({'m': old}))['m']['read_ahead_kb'] is None
    assert _record.same(parsed['m'], dict(rec, updated='later'))
    assert not _record.same(parsed['m'], dict(rec, mount_path='/mnt/x'))
    assert _record.parse(None) == {}


def test_filesystem_xml_has_no_readonly():
    xml = _libvirt.filesystem_xml('/var/lib/aimodel/volumes/v/ro/models/m', 'aim-m-1', 'always')
    devs = _libvirt.filesystems('<domain><devices>%s</devices></domain>' % xml)
    assert devs == [{'tag': 'aim-m-1', 'source': '/var/lib/aimodel/volumes/v/ro/models/m', 'alias': None, 'cache': 'always'}]
    assert 'readonly' not in xml


def test_report_statuses():
    dom = mounted_domain()
    dom.config = dom.config + [('aim-stray-2', '/other')]
    entries, orphans = _state.report(_state.VmState(dom, _guest.Agent(dom)), 'vm1')
    assert entries[0]['status'] == 'mounted' and entries[0]['reasons'] == []
    assert orphans == [{'vm': 'vm1', 'kind': 'device_without_record', 'where': 'config', 'tag': 'aim-stray-2',
                        'source': '/other'}]
    # After a reboot without the fstab line: the device is there, the guest mount is not.
    dom.guest.mounts = [m for m in dom.guest.mounts if m[2] != 'virtiofs']
    entries, _orphans = _state.report(_state.VmState(dom, _guest.Agent(dom)), 'vm1')
    assert entries[0]['status'] == 'degraded' and entries[0]['reasons'] == ['not_mounted_in_guest']
    dom.guest.reachable = False
    entries, _orphans = _state.report(_state.VmState(dom, _guest.Agent(dom)), 'vm1')
    assert 'guest_unreachable' in entries[0]['reasons'] and entries[0]['guest_mounted'] is None
    dom.active = False
    entries, _orphans = _state.report(_state.VmState(dom, _guest.Agent(dom)), 'vm1')
    assert entries[0]['status'] == 'pending'


def test_report_stale_mount_and_record_without_device():
    dom = mounted_domain()
    dom.guest.stale.add('/mnt/m')
    agent = _guest.Agent(dom)
    entries, orphans = _state.report(_state.VmState(dom, agent), 'vm1')
    assert entries[0]['status'] == 'degraded' and entries[0]['reasons'] == ['stale_guest_mount']
    assert entries[0]['guest_mounted'] is True and entries[0]['guest_accessible'] is False
    assert orphans == []
    dom.live, dom.config = [], []
    entries, orphans = _state.report(_state.VmState(dom, _guest.Agent(dom)), 'vm1')
    assert set(entries[0]['reasons']) >= set(['device_missing_live', 'device_missing_config'])
    assert orphans[0]['kind'] == 'record_without_device' and orphans[0]['model'] == 'm'


def test_accessible_many_one_command():
    dom = FakeDomain()
    dom.guest.stale.add('/mnt/b')
    agent = _guest.Agent(dom)
    assert agent.accessible_many(['/mnt/a', '/mnt/b']) == {'/mnt/a': True, '/mnt/b': False}
    assert agent.round_trips == 2


def test_agent_error_answer_is_not_unreachable():
    class Refusing:
        name = 'vm1'

        @staticmethod
        def agent_command(_json, _timeout):
            raise RuntimeError("internal error: unable to execute QEMU agent command 'guest-file-open': "
                               "Guest agent command failed, error was 'Read-only file system'")
    try:
        _guest.Agent(Refusing()).command('guest-file-open', {'path': '/x', 'mode': 'w'})
    except _guest.GuestError as exc:
        assert not exc.unreachable and 'Read-only file system' in str(exc)
    else:
        raise AssertionError('no error')


def test_report_dead_backend_is_not_probed():
    dom = mounted_domain()
    dom.dead_backends.add('aim-m-1')
    entries, _orphans = _state.report(_state.VmState(dom, _guest.Agent(dom)), 'vm1')
    assert entries[0]['reasons'] == ['device_backend_dead'] and entries[0]['guest_accessible'] is None
    assert not [a for a in dom.guest.argvs if a[0] == 'stat']


def test_set_and_read_the_guest_readahead():
    dom = FakeDomain()
    agent = _guest.Agent(dom)
    agent.set_read_ahead_kb('0:24', 1024)
    assert dom.guest.files['/sys/class/bdi/0:24/read_ahead_kb'] == '1024\n'
    assert agent.read_ahead_kb('0:24') == 1024 and agent.read_ahead_kb('0:99') is None
    dom.guest.no_file_ops = True
    agent.set_read_ahead_kb('0:24', 2048)
    assert dom.guest.files['/sys/class/bdi/0:24/read_ahead_kb'] == '2048\n'
    assert ['sh', '-c', _guest.WRITE_VALUE_SCRIPT, 'sh', '2048', '/sys/class/bdi/0:24/read_ahead_kb'] in dom.guest.argvs
