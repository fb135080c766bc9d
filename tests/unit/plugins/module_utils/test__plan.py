# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The step list: applying it, rolling back newest first, and the report of a failure."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import pytest

from ansible_collections.aimodel.kvm.plugins.module_utils import _plan
from ansible_collections.aimodel.kvm.plugins.module_utils._errors import AimodelError


def test_apply_runs_every_step_in_order():
    done = []
    plan = _plan.Plan('vm1')
    plan.add('one', lambda: done.append(1))
    plan.add('two', lambda: done.append(2))
    plan.apply()
    assert done == [1, 2]


def test_failure_rolls_back_newest_first_and_says_so():
    log = []

    def boom():
        raise RuntimeError('no space left')

    def broken_undo():
        raise RuntimeError('undo broke')
    plan = _plan.Plan('vm1')
    plan.add('a', lambda: log.append('a'), lambda: log.append('undo a'), 'took a back')
    plan.add('b', lambda: log.append('b'), broken_undo, 'took b back')
    plan.add('c', lambda: log.append('c'), undo_text='c stays (shared)')
    plan.add('d', lambda: log.append('d'))
    plan.add('e', boom, lambda: log.append('undo e'), 'took e back')
    plan.add('f', lambda: log.append('f'))
    with pytest.raises(_plan.OperationFailed) as info:
        plan.apply()
    assert log == ['a', 'b', 'c', 'd', 'undo a']
    msg = str(info.value)
    assert msg.startswith('VM vm1: e failed: no space left. Done before the failure: a; b; c; d.')
    assert 'Rolled back: took a back. Kept' in msg         # d has no undo and nothing to say
    assert 'Kept on purpose: c stays (shared).' in msg
    assert 'NOT rolled back (fix by hand or re-run): took b back (undo broke).' in msg
    assert isinstance(info.value, AimodelError)


def test_failure_of_the_first_step_has_nothing_to_roll_back():
    plan = _plan.Plan('vm1')
    plan.add('a', lambda: 1 / 0)
    with pytest.raises(_plan.OperationFailed) as info:
        plan.apply()
    assert 'Rolled back: nothing was left to roll back.' in str(info.value)
    assert 'Done before' not in str(info.value)


def test_scope():
    assert _plan.scope(True, True) == 'live and persistent'
    assert _plan.scope(True, False) == 'live'
    assert _plan.scope(False, True) == 'persistent'


def test_a_failed_step_keeps_the_field_of_its_error():
    plan = _plan.Plan('vm1')

    def refuse():
        raise _plan.OperationFailed('source_path: x is a symbolic link', field='source_path')
    plan.add('pin x', refuse)
    with pytest.raises(_plan.OperationFailed) as caught:
        plan.apply()
    assert caught.value.field == 'source_path'


def test_an_unsure_step_that_fails_is_undone_first_and_the_guest_gets_time_for_it():
    log = []

    def half_done():
        log.append('half')
        raise RuntimeError('the answer never came')
    plan = _plan.Plan('vm1', before_rollback=lambda: log.append('more time'))
    plan.add('a', lambda: log.append('a'), lambda: log.append('undo a'), 'took a back')
    plan.add('b', half_done, lambda: log.append('undo b'), 'took b back', unsure=True)
    with pytest.raises(_plan.OperationFailed) as info:
        plan.apply()
    assert log == ['a', 'half', 'more time', 'undo b', 'undo a']
    assert 'Done before the failure: a.' in str(info.value)
    assert 'Rolled back: took b back; took a back.' in str(info.value)


def test_an_unsure_step_that_had_done_nothing_is_not_said_to_be_undone():
    plan = _plan.Plan('vm1')
    plan.add('a', lambda: None, lambda: None, 'took a back')
    plan.add('b', lambda: 1 / 0, lambda: False, 'took b back', unsure=True)
    with pytest.raises(_plan.OperationFailed) as info:
        plan.apply()
    assert 'Rolled back: took a back.' in str(info.value) and 'took b back' not in str(info.value)


def test_no_rollback_no_extra_time():
    log = []
    plan = _plan.Plan('vm1', before_rollback=lambda: log.append('more time'))
    plan.add('a', lambda: 1 / 0, lambda: log.append('undo a'), 'took a back')
    with pytest.raises(_plan.OperationFailed):
        plan.apply()
    assert log == []
