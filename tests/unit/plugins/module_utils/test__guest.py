# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The guest agent: reads without a guest process, writes, mounts, readahead, fstab editing."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.tests.unit.plugins.fakes import FakeDomain


FSTAB = '# comment\n/dev/vda /persist ext4 rw 0 0\naim-a-1 /mnt/a virtiofs ro,nofail 0 0\n'


def test_read_without_a_guest_process():
    dom = FakeDomain()
    agent = _guest.Agent(dom)
    assert agent.read_file('/etc/fstab') == dom.guest.files['/etc/fstab']
    assert agent.mounts()[1]['target'] == '/persist'
    assert dom.guest.argvs == []
    assert agent.round_trips == 6          # open, read, close per file
    assert dom._files == {}                # every handle closed  # pylint: disable=protected-access
    assert dom.guest.files['/etc/fstab'].startswith('# static')   # a read never writes back


def test_read_missing_file_is_none():
    dom = FakeDomain()
    assert _guest.Agent(dom).read_file('/etc/nope') is None


def test_read_in_chunks(monkeypatch):
    dom = FakeDomain()
    dom.guest.files['/etc/fstab'] = ''.join('tag%d /mnt/m%d virtiofs ro,nofail 0 0\n' % (i, i) for i in range(50))
    monkeypatch.setattr(_guest, 'READ_CHUNK', 100)
    assert _guest.Agent(dom).read_file('/etc/fstab') == dom.guest.files['/etc/fstab']


def test_agent_without_file_commands_falls_back_to_cat():
    dom = FakeDomain()
    dom.guest.no_file_ops = True
    agent = _guest.Agent(dom)
    assert agent.read_file('/etc/fstab') == dom.guest.files['/etc/fstab']
    assert agent.read_file('/etc/nope') is None
    assert agent.mounts()[1]['target'] == '/persist'
    assert ['cat', '/proc/self/mountinfo'] in dom.guest.argvs


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
