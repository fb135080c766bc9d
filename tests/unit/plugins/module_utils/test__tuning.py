# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The unit that keeps a shared device's readahead over a guest reboot, and the module runs that write it."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _tuning
from ansible_collections.aimodel.kvm.plugins.modules import vm_model_mount
from ansible_collections.aimodel.kvm.tests.unit.plugins.fakes import guest_run
from ansible_collections.aimodel.kvm.tests.unit.plugins.modules.test_vm_model_mount import ARGS, ARGS2

UNIT = '/etc/systemd/system/aimodel-ro-readahead.service'
LINK = '/etc/systemd/system/run-aimodel-ro.mount.wants/aimodel-ro-readahead.service'


def systemd(domain):
    domain.guest.files['/proc/1/comm'] = 'systemd\n'


def test_names_follow_systemd():
    assert _tuning.unit_path('aimodel-ro') == UNIT
    assert _tuning.wants_path('aimodel-ro') == LINK
    # systemd-escape --path: a dash in a name is \x2d, the slashes become dashes.
    assert _tuning.mount_unit('aimodel-ro-always') == 'run-aimodel-ro\\x2dalways.mount'


def test_the_unit_sets_the_readahead_of_the_base_mount_after_it():
    text = _tuning.unit_text('aimodel-rw', 4096)
    assert 'After=run-aimodel-rw.mount\n' in text and 'ConditionPathIsMountPoint=/run/aimodel/rw\n' in text
    # $$ is a literal $ for systemd: the shell gets "$1", "$2" and the device number of the mount point.
    assert text.endswith('ExecStart=/bin/sh -c \'echo "$$2" > "/sys/class/bdi/$$(mountpoint -d "$$1")/read_ahead_kb"\' '
                         'sh /run/aimodel/rw 4096\n')


def test_a_systemd_guest_gets_the_unit_with_the_fstab_line(domain, host, run_module):
    systemd(domain)
    result = run_module(vm_model_mount, ARGS)
    assert domain.guest.files[UNIT] == domain.guest.files[LINK] == _tuning.unit_text('aimodel-ro', 1024)
    assert any(a.startswith('write the unit %s' % UNIT) for a in result['actions'])
    # Re-run: read, right, not written again.
    argvs = len(domain.guest.argvs)
    assert run_module(vm_model_mount, ARGS)['changed'] is False
    assert not [a for a in domain.guest.argvs[argvs:] if _tuning.INSTALL_UNIT_SCRIPT in a]
    # A second model that asks for more: the device's readahead, and its unit, follow the largest.
    run_module(vm_model_mount, dict(ARGS2, read_ahead_kb=8192))
    assert domain.guest.files[LINK] == _tuning.unit_text('aimodel-ro', 8192)
    # It leaves: back to what the first asks; the last one leaves with the fstab line: the unit goes.
    run_module(vm_model_mount, dict(ARGS2, state='absent'))
    assert domain.guest.files[LINK] == _tuning.unit_text('aimodel-ro', 1024)
    result = run_module(vm_model_mount, dict(ARGS, state='absent'))
    assert UNIT not in domain.guest.files and LINK not in domain.guest.files
    assert 'remove the unit %s from the guest' % UNIT in result['actions']


def test_the_unit_follows_persist_and_read_ahead(domain, host, run_module):
    systemd(domain)
    run_module(vm_model_mount, ARGS)
    run_module(vm_model_mount, dict(ARGS, persist=False))
    assert UNIT not in domain.guest.files and _guest.fstab_find(domain.guest.files['/etc/fstab'], 'aimodel-ro') is None
    run_module(vm_model_mount, ARGS)
    assert UNIT in domain.guest.files
    run_module(vm_model_mount, dict(ARGS, read_ahead_kb=0))
    assert UNIT not in domain.guest.files, 'no readahead asked: nothing to keep'


def test_a_unit_changed_in_the_guest_is_written_again(domain, host, run_module):
    systemd(domain)
    run_module(vm_model_mount, ARGS)
    guest_run(domain, ['sh', '-c', _tuning.REMOVE_UNIT_SCRIPT, 'sh', UNIT, LINK])
    result = run_module(vm_model_mount, ARGS)
    assert result['changed'] and domain.guest.files[LINK] == _tuning.unit_text('aimodel-ro', 1024)


def test_a_guest_without_systemd_gets_no_unit(domain, host, run_module):
    run_module(vm_model_mount, ARGS)
    assert not [p for p in domain.guest.files if p.startswith('/etc/systemd')]
    assert not [a for a in domain.guest.argvs if _tuning.INSTALL_UNIT_SCRIPT in a]


def test_check_mode_writes_no_unit(domain, host, run_module):
    systemd(domain)
    result = run_module(vm_model_mount, ARGS, check=True)
    assert result['changed'] and UNIT not in domain.guest.files


def test_a_failed_run_takes_the_unit_back(domain, host, run_module):
    systemd(domain)
    domain.fail_metadata = 1   # the record, the last step, fails: the unit was written before it
    result = run_module(vm_model_mount, ARGS)
    assert result['failed'] and 'Rolled back' in result['msg']
    assert UNIT not in domain.guest.files and LINK not in domain.guest.files
