# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One operation per name at a time: an flock, waited for up to the timeout, released on exit."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import pytest

from ansible_collections.aimodel.kvm.plugins.module_utils import _lock


def test_a_held_lock_times_out_naming_what_it_guards(tmp_path):
    with _lock.Lock('vm-1', 1, 'VM one', lock_dir=str(tmp_path)):
        with pytest.raises(_lock.LockTimeout) as info:
            with _lock.Lock('vm-1', 1, 'VM one', lock_dir=str(tmp_path)):
                pass
    assert 'VM one' in str(info.value) and 'lock_timeout' in str(info.value)
    assert 'nothing was changed' in str(info.value)


def test_released_on_exit_and_names_are_independent(tmp_path):
    with _lock.Lock('vm-1', 1, 'VM one', lock_dir=str(tmp_path)):
        with _lock.Lock('vm-2', 1, 'VM two', lock_dir=str(tmp_path)):
            pass
    with _lock.Lock('vm-1', 1, 'VM one', lock_dir=str(tmp_path)) as lock:
        assert lock.path == str(tmp_path / 'vm-1.lock')


def test_the_file_name_is_made_safe(tmp_path):
    assert _lock.Lock('volume-a/../b c', 1, 'x', lock_dir=str(tmp_path)).path == str(tmp_path / 'volume-a_.._b_c.lock')
