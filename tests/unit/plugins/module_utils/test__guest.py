# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The guest agent: reads without a guest process, writes, mounts and binds, readahead, fstab editing."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import json

import pytest

from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.tests.unit.plugins.fakes import RHEL8_BLOCKED, FakeDomain, GuestClock, guest_run, slow_guest


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


def test_agent_without_file_commands_falls_back_to_head():
    dom = FakeDomain()
    dom.guest.no_file_ops = True
    agent = _guest.Agent(dom)
    assert agent.read_file('/etc/fstab') == dom.guest.files['/etc/fstab']
    assert agent.read_file('/etc/nope') is None
    assert agent.mounts()[1]['target'] == '/persist'
    assert ['head', '-c', str(_guest.MAX_FILE_BYTES + 1), '/proc/self/mountinfo'] in dom.guest.argvs


def test_fstab_edit_of_a_model_with_a_device_of_its_own():
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


SHARED = ('# comment\n/dev/vda /persist ext4 rw 0 0\n'
          'aimodel-ro /run/aimodel/ro virtiofs ro,nosuid,nodev,nofail 0 0\n'
          '/run/aimodel/ro/aim-a-1 /mnt/a none bind,ro,nosuid,nodev,nofail,'
          'x-systemd.requires-mounts-for=/run/aimodel/ro 0 0\n')


def test_fstab_lines_of_the_shared_layout():
    assert _guest.fstab_base_line('aimodel-ro', '/run/aimodel/ro', True) == \
        'aimodel-ro /run/aimodel/ro virtiofs ro,nosuid,nodev,nofail 0 0'
    assert _guest.fstab_base_line('aimodel-rw-always', '/run/aimodel/rw-always', False) == \
        'aimodel-rw-always /run/aimodel/rw-always virtiofs rw,nosuid,nodev,nofail 0 0'
    assert _guest.fstab_bind_line('/run/aimodel/ro/aim-a-1', '/mnt/a', '/run/aimodel/ro', True) == \
        '/run/aimodel/ro/aim-a-1 /mnt/a none bind,ro,nosuid,nodev,nofail,x-systemd.requires-mounts-for=/run/aimodel/ro 0 0'
    assert _guest.fstab_bind_line('/run/aimodel/rw/aim-a-1', '/srv/my models', '/run/aimodel/rw', False) == \
        '/run/aimodel/rw/aim-a-1 /srv/my\\040models none bind,rw,nosuid,nodev,nofail,' \
        'x-systemd.requires-mounts-for=/run/aimodel/rw 0 0'


def test_fstab_lines_are_found_by_their_first_field():
    assert _guest.fstab_find(SHARED, 'aimodel-ro').startswith('aimodel-ro /run/aimodel/ro virtiofs')
    assert _guest.fstab_find(SHARED, '/run/aimodel/ro/aim-a-1').startswith('/run/aimodel/ro/aim-a-1 /mnt/a none bind,')
    assert _guest.fstab_find(SHARED, '/mnt/a') is None, 'the second field is no key'
    assert _guest.fstab_find(SHARED, 'aim-a-1') is None
    assert _guest.fstab_find('/x\\040y /mnt/b none bind 0 0\n', '/x y') == '/x\\040y /mnt/b none bind 0 0'


def test_fstab_with_replaces_a_line_where_it_is():
    moved = _guest.fstab_bind_line('/run/aimodel/ro/aim-a-1', '/srv/a', '/run/aimodel/ro', True)
    text = _guest.fstab_with(SHARED, '/run/aimodel/ro/aim-a-1', moved)
    assert text.splitlines() == SHARED.splitlines()[:3] + [moved]
    # The base line replaced in place stays before the binds from it; a duplicate line of the key goes.
    doubled = SHARED + SHARED.splitlines()[2] + '\n'
    text = _guest.fstab_with(doubled, 'aimodel-ro', _guest.fstab_base_line('aimodel-ro', '/run/aimodel/ro', False))
    assert text.splitlines()[2].startswith('aimodel-ro /run/aimodel/ro virtiofs rw,') and text.count('aimodel-ro ') == 1
    assert text.splitlines()[3].startswith('/run/aimodel/ro/aim-a-1 ')
    added = _guest.fstab_with(SHARED, '/run/aimodel/ro/aim-b-2', 'B')
    assert added == SHARED + 'B\n'
    assert _guest.fstab_with('', 'aimodel-ro', 'L') == 'L\n'


def test_fstab_without_keeps_every_other_line():
    text = _guest.fstab_without(SHARED, '/run/aimodel/ro/aim-a-1')
    assert text == '\n'.join(SHARED.splitlines()[:3]) + '\n'
    assert _guest.fstab_without(text, 'aimodel-ro') == '# comment\n/dev/vda /persist ext4 rw 0 0\n'
    assert _guest.fstab_without(SHARED, 'aim-nope') == SHARED


def test_base_mount_and_bind_argv():
    dom = FakeDomain()
    dom.attach(_libvirt.filesystem_xml('/view', 'aimodel-ro'), True, False)
    agent = _guest.Agent(dom)
    agent.make_dirs('/run/aimodel/ro')
    agent.mount_virtiofs('aimodel-ro', '/run/aimodel/ro', True, 1.0, _guest.MODEL_OPTIONS)
    agent.make_dirs('/mnt/a')
    agent.bind_mount('/run/aimodel/ro/aim-a-1', '/mnt/a', True)
    assert [a for a in dom.guest.argvs if a[0] == 'mount'] == [
        ['mount', '-t', 'virtiofs', '-o', 'ro,nosuid,nodev', 'aimodel-ro', '/run/aimodel/ro'],
        ['mount', '-o', 'bind,ro,nosuid,nodev', '/run/aimodel/ro/aim-a-1', '/mnt/a']]
    base, bind = agent.mounts()[-2:]
    assert (base['source'], base['root'], base['fstype']) == ('aimodel-ro', '/', 'virtiofs')
    assert (bind['source'], bind['root'], bind['fstype'], bind['target']) == ('aimodel-ro', '/aim-a-1', 'virtiofs', '/mnt/a')
    assert bind['dev'] == base['dev'], 'one file system: one readahead setting'
    assert 'ro' in bind['options'] and 'nosuid' in bind['options'] and 'nodev' in bind['options']
    agent.bind_mount('/run/aimodel/ro/aim-a-1', '/mnt/a', False)
    assert dom.guest.argvs[-1] == ['mount', '-o', 'bind,rw,nosuid,nodev', '/run/aimodel/ro/aim-a-1', '/mnt/a']


def test_bind_failure_names_both_paths():
    dom = FakeDomain()
    dom.attach(_libvirt.filesystem_xml('/view', 'aimodel-ro'), True, False)
    guest_run(dom, ['mkdir', '-p', '/run/aimodel/ro'])
    guest_run(dom, ['mount', '-t', 'virtiofs', '-o', 'ro', 'aimodel-ro', '/run/aimodel/ro'])
    try:
        _guest.Agent(dom).bind_mount('/run/aimodel/ro/aim-a-1', '/mnt/nowhere', True)
    except _guest.GuestError as exc:
        assert 'binding /run/aimodel/ro/aim-a-1 onto /mnt/nowhere failed in VM vm1' in str(exc)
        assert 'No such file or directory' in str(exc)
    else:
        raise AssertionError('no error')


def test_readahead_of_a_base_mount_is_shared_by_its_binds():
    dom = FakeDomain()
    dom.attach(_libvirt.filesystem_xml('/view', 'aimodel-ro'), True, False)
    guest_run(dom, ['mkdir', '-p', '/run/aimodel/ro'])
    guest_run(dom, ['mount', '-t', 'virtiofs', '-o', 'ro', 'aimodel-ro', '/run/aimodel/ro'])
    guest_run(dom, ['mkdir', '-p', '/mnt/a'])
    guest_run(dom, ['mount', '-o', 'bind,ro,nosuid,nodev', '/run/aimodel/ro/aim-a-1', '/mnt/a'])
    agent = _guest.Agent(dom)
    bind = agent.mounts()[-1]
    assert agent.read_ahead_kb(bind['dev']) == 128
    agent.set_read_ahead_kb(bind['dev'], 2048)
    assert agent.read_ahead_kb(agent.mounts()[-2]['dev']) == 2048
    agent.umount('/run/aimodel/ro')
    assert agent.read_ahead_kb(bind['dev']) == 2048, 'the file system lives while a bind of it does'
    agent.umount('/mnt/a')
    assert agent.read_ahead_kb(bind['dev']) is None


# --- a guest that answers out of bounds ---------------------------------------------------------

def test_a_file_past_its_cap_is_refused_without_reading_it_all():
    dom = FakeDomain()
    dom.guest.files['/etc/fstab'] = 'x' * (_guest.MAX_FILE_BYTES * 3)
    agent = _guest.Agent(dom)
    with pytest.raises(_guest.GuestError, match='out of bounds.*more than 1048576 bytes'):
        agent.read_file('/etc/fstab')
    assert agent.round_trips <= 4, 'stops after the first read past the cap'


def test_a_sysfs_value_has_a_small_cap():
    dom = FakeDomain()
    dom.guest.files['/sys/class/bdi/0:99/read_ahead_kb'] = '1' * 100
    with pytest.raises(_guest.GuestError, match='out of bounds'):
        _guest.Agent(dom).read_ahead_kb('0:99')


def test_a_capped_file_without_the_file_commands():
    dom = FakeDomain()
    dom.guest.no_file_ops = True
    dom.guest.files['/etc/fstab'] = 'x' * (_guest.MAX_FILE_BYTES + 10)
    with pytest.raises(_guest.GuestError, match='out of bounds'):
        _guest.Agent(dom).read_file('/etc/fstab')


class Replies:
    """A domain whose agent answers each command with a canned (malformed) reply."""

    name = 'vm1'

    def __init__(self, **answers):
        self.answers = answers

    def agent_command(self, command_json, timeout):
        execute = json.loads(command_json)['execute']
        return self.answers[execute]


@pytest.mark.parametrize('answers', [
    {'guest-exec': '[1, 2]'},
    {'guest-exec': '{"return": []}'},
    {'guest-exec': '{"return": {"pid": "7"}}'},
    {'guest-exec': '{"return": {"pid": 7}}', 'guest-exec-status': '{"return": [true]}'},
    {'guest-exec': '{"return": {"pid": 7}}', 'guest-exec-status': '{"return": {"exited": true, "exitcode": "0"}}'},
    {'guest-exec': '{"return": {"pid": 7}}', 'guest-exec-status': '{"return": {"exited": true, "exitcode": 0, "out-data": 5}}'},
    {'guest-exec': '{"return": {"pid": 7}}',
     'guest-exec-status': '{"return": {"exited": true, "exitcode": 0, "out-data": "%s"}}' % ('A' * (_guest.MAX_OUTPUT_BYTES * 2))},
], ids=['list', 'return list', 'pid text', 'status list', 'exit code text', 'output number', 'output too big'])
def test_malformed_exec_replies_are_guest_errors(answers):
    with pytest.raises(_guest.GuestError, match='out of bounds'):
        _guest.Agent(Replies(**answers)).run(['true'])


def test_malformed_file_replies_are_guest_errors():
    agent = _guest.Agent(Replies(**{'guest-file-open': '{"return": "h"}', 'guest-file-close': '{"return": {}}'}))
    with pytest.raises(_guest.GuestError, match='out of bounds'):
        agent.read_file('/etc/fstab')
    agent = _guest.Agent(Replies(**{'guest-file-open': '{"return": 1}', 'guest-file-read': '{"return": [1]}',
                                    'guest-file-close': '{"return": {}}'}))
    with pytest.raises(_guest.GuestError, match='out of bounds'):
        agent.read_file('/etc/fstab')


@pytest.fixture
def clock(monkeypatch):
    fake = GuestClock()
    monkeypatch.setattr(_guest, 'time', fake)
    return fake


def test_each_guest_call_gets_at_most_the_guest_time_left(clock):
    dom = FakeDomain()
    timeouts = slow_guest(dom, clock, 20)
    agent = _guest.Agent(dom, 30, budget=50)
    with pytest.raises(_guest.GuestError, match=r'answered out of bounds: it used up the guest time of the run '
                                                r'\(guest_timeout, 50 s\) waiting for guest-file-close') as caught:
        agent.read_file('/etc/fstab')
    assert timeouts == [30, 30, 10] and not caught.value.unreachable
    assert clock.now == 1050.0
    with pytest.raises(_guest.GuestError, match=r'used up the guest time of the run .* before guest-file-open'):
        agent.read_file('/etc/fstab')
    assert len(timeouts) == 3, 'no further call reaches the guest'


def test_a_guest_command_that_never_ends_is_bounded_by_the_guest_time(clock):
    agent = _guest.Agent(Replies(**{'guest-exec': '{"return": {"pid": 7}}',
                                    'guest-exec-status': '{"return": {"exited": false}}'}), 30, budget=5)
    with pytest.raises(_guest.GuestError, match=r'used up the guest time of the run .* before guest-exec-status'):
        agent.run(['sleep', '999'])
    assert clock.now == pytest.approx(1005.0)
    # Without a budget only the command's own timeout ends it.
    agent = _guest.Agent(Replies(**{'guest-exec': '{"return": {"pid": 7}}',
                                    'guest-exec-status': '{"return": {"exited": false}}'}), 30)
    with pytest.raises(_guest.GuestError, match='did not finish within 30s'):
        agent.run(['sleep', '999'])


def test_the_mount_retries_count_as_guest_time(clock):
    dom = FakeDomain()            # no device with this tag: the mount fails as if not yet discovered
    agent = _guest.Agent(dom, 30, budget=2)
    with pytest.raises(_guest.GuestError, match=r'used up the guest time of the run .* before'):
        agent.mount_virtiofs('aimodel-ro', '/mnt', True, wait=30.0)
    assert clock.now < 1000.0 + 3


def test_a_guest_agent_that_is_away_is_unreachable_not_out_of_time(clock):
    dom = FakeDomain()
    dom.guest.reachable = False
    with pytest.raises(_guest.GuestError, match='did not answer') as caught:
        _guest.Agent(dom, 30, budget=5).read_file('/etc/fstab')
    assert caught.value.unreachable


def test_more_guest_time_for_a_rollback(clock):
    dom = FakeDomain()
    timeouts = slow_guest(dom, clock, 4)
    agent = _guest.Agent(dom, 30, budget=10)
    with pytest.raises(_guest.GuestError, match='used up the guest time'):
        for _round in range(5):
            agent.read_file('/etc/fstab')
    agent.allow_rollback(30)
    del timeouts[:]
    assert agent.read_file('/etc/fstab').startswith('# static')
    assert timeouts == [30, 26, 22]     # each call gets what is left of the 30 s more
    agent.allow_rollback(30)            # once per run
    with pytest.raises(_guest.GuestError, match='used up the guest time'):
        for _round in range(5):
            agent.read_file('/etc/fstab')
    assert agent.spent <= 10 + 30


def test_guest_text_in_messages_is_clipped_and_escaped():
    text = _guest.clip('a\x1b[31m' + 'b' * 1000)
    assert text.startswith('a\\x1b[31m') and text.endswith('...') and len(text) <= _guest.MAX_GUEST_TEXT + 3


# --- what the agent allows ---------------------------------------------------------------------------------

def test_the_agent_is_asked_once_which_commands_it_allows():
    dom = FakeDomain()
    agent = _guest.Agent(dom)
    assert agent.commands()['guest-exec'] is True
    agent.commands()
    assert agent.round_trips == 1 and agent.disabled(_guest.EXEC_COMMANDS) == [] and agent.frozen is False


def test_a_disabled_command_is_refused_by_an_agent_that_answers_not_an_unreachable_one():
    # libvirt's text for an older qemu-ga, for 7.2 (seen in the lab) and for later releases.
    for text in ("internal error: unable to execute QEMU agent command 'guest-exec': The command guest-exec has been "
                 "disabled for this instance",
                 "internal error: unable to execute QEMU agent command 'guest-exec': Command guest-exec has been disabled",
                 "Command guest-exec has been disabled: the agent is in frozen state"):
        class Refusing:
            name = 'vm1'

            @staticmethod
            def agent_command(_json, _timeout, text=text):
                raise RuntimeError(text)
        with pytest.raises(_guest.CommandsDisabled) as caught:
            _guest.Agent(Refusing()).command('guest-exec', {'path': 'true'})
        assert not caught.value.unreachable and caught.value.commands == ['guest-exec']
        if caught.value.frozen:
            assert 'frozen state' in text and 'domfsthaw' in str(caught.value)
        else:
            assert 'BLACKLIST_RPC' in str(caught.value) and 'FILTER_RPC_ARGS' in str(caught.value)


def test_a_rhel8_agent_is_refused_before_any_guest_command_naming_what_it_blocks():
    dom = FakeDomain()
    dom.guest.disabled.update(RHEL8_BLOCKED)
    agent = _guest.Agent(dom)
    agent.commands()
    with pytest.raises(_guest.CommandsDisabled) as caught:
        agent.mounts()
    assert caught.value.commands == ['guest-exec', 'guest-exec-status', 'guest-file-close', 'guest-file-open',
                                     'guest-file-read']
    assert 'reading /proc/self/mountinfo' in str(caught.value) and 'guest_mount: false' in str(caught.value)
    with pytest.raises(_guest.CommandsDisabled, match='running mkdir'):
        agent.make_dirs('/mnt/a')
    # guest-info and guest-fsfreeze-status (it disabled commands: frozen?); nothing asked that it refuses.
    assert agent.round_trips == 2 and dom.guest.argvs == []


def test_an_agent_without_file_commands_reads_with_a_guest_command_at_once():
    dom = FakeDomain()
    dom.guest.disabled.update(['guest-file-open', 'guest-file-read', 'guest-file-write', 'guest-file-close'])
    agent = _guest.Agent(dom)
    agent.commands()
    assert agent.read_file('/etc/fstab') == dom.guest.files['/etc/fstab']
    # guest-info, guest-fsfreeze-status (asked once, as the agent disabled commands), guest-exec and its status:
    # no guest-file-open that it refuses.
    assert agent.round_trips == 4
    agent.set_read_ahead_kb('0:24', 1024)
    assert dom.guest.files['/sys/class/bdi/0:24/read_ahead_kb'] == '1024\n'


def test_a_frozen_guest_is_told_apart_from_a_locked_down_one():
    dom = FakeDomain()
    dom.guest.frozen = True
    agent = _guest.Agent(dom)
    agent.commands()
    assert agent.frozen is True
    with pytest.raises(_guest.CommandsDisabled) as caught:
        agent.read_file('/etc/fstab')
    assert caught.value.frozen and 'domfsthaw' in str(caught.value) and 'BLACKLIST_RPC' not in str(caught.value)
    # Frozen after the agent was asked: its answer says so.
    dom = FakeDomain()
    agent = _guest.Agent(dom)
    agent.commands()
    dom.guest.frozen = True
    with pytest.raises(_guest.CommandsDisabled, match='domfsthaw'):
        agent.run(['true'])


def test_an_agent_that_does_not_say_what_it_allows_is_taken_to_allow_everything():
    dom = FakeDomain()
    dom.guest.disabled.add('guest-info')
    agent = _guest.Agent(dom)
    assert agent.commands() == {} and agent.disabled(_guest.EXEC_COMMANDS) == []
    assert agent.read_file('/etc/fstab') == dom.guest.files['/etc/fstab']


# --- other guest facts -------------------------------------------------------------------------------------

def test_a_guest_kernel_without_virtiofs_fails_at_once_and_says_so(clock):
    dom = FakeDomain()
    dom.attach(_libvirt.filesystem_xml('/view', 'aimodel-ro'), True, False)
    dom.guest.kernel_virtiofs = False
    guest_run(dom, ['mkdir', '-p', '/run/aimodel/ro'])
    with pytest.raises(_guest.GuestError, match='has no virtiofs file system') as caught:
        _guest.Agent(dom).mount_virtiofs('aimodel-ro', '/run/aimodel/ro', True, wait=30.0)
    assert 'Linux 5.4' in str(caught.value) and 'CONFIG_VIRTIO_FS' in str(caught.value)
    assert len([a for a in dom.guest.argvs if a[0] == 'mount']) == 1, 'no retries'


def test_util_linux_unknown_filesystem_type_is_a_kernel_without_virtiofs():
    class Mount:
        name = 'vm1'
        pids = {}

        def agent_command(self, command_json, _timeout):
            request = json.loads(command_json)
            if request['execute'] == 'guest-exec':
                return '{"return": {"pid": 5}}'
            err = "mount: /run/aimodel/ro: unknown filesystem type 'virtiofs'.\n".encode()
            import base64
            return json.dumps({'return': {'exited': True, 'exitcode': 32, 'err-data': base64.b64encode(err).decode()}})
    with pytest.raises(_guest.GuestError, match="has no virtiofs file system .*unknown filesystem type 'virtiofs'"):
        _guest.Agent(Mount()).mount_virtiofs('aimodel-ro', '/run/aimodel/ro', True, wait=30.0)


def test_a_device_not_yet_discovered_is_still_waited_for_on_a_kernel_with_virtiofs(clock):
    dom = FakeDomain()
    with pytest.raises(_guest.GuestError, match='Invalid argument'):
        _guest.Agent(dom).mount_virtiofs('aimodel-ro', '/mnt', True, wait=2.0)
    assert len([a for a in dom.guest.argvs if a[0] == 'mount']) > 1


def test_an_fstab_on_a_read_only_file_system_says_what_to_do():
    dom = FakeDomain()
    dom.guest.read_only_files.add('/etc/fstab')
    with pytest.raises(_guest.GuestError, match='read-only file system in the guest') as caught:
        _guest.Agent(dom).write_file('/etc/fstab', 'x\n')
    assert 'persist: false' in str(caught.value)


def test_a_command_an_older_agent_does_not_have_is_no_unreachable_agent():
    class Old:
        name = 'vm1'

        @staticmethod
        def agent_command(_json, _timeout):
            raise RuntimeError("internal error: unable to execute QEMU agent command 'guest-exec': The command "
                               "guest-exec has not been found")
    with pytest.raises(_guest.GuestError, match='does not have guest-exec') as caught:
        _guest.Agent(Old()).command('guest-exec', {'path': 'true'})
    assert not caught.value.unreachable


def test_a_reply_past_its_cap_is_not_parsed():
    class Flooding:
        name = 'vm1'

        @staticmethod
        def agent_command(_json, _timeout):
            return '{"return": {"pid": 1}, "pad": "%s"}' % ('x' * _guest.MAX_REPLY_CHARS)
    with pytest.raises(_guest.GuestError, match='answered out of bounds to guest-exec: a reply of') as err:
        _guest.Agent(Flooding()).command('guest-exec', {'path': '/bin/true'})
    assert not err.value.unreachable
