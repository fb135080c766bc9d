# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The pure parts of the mounted plan: a model's fstab key and lines, the base line of a shared device, and the
readahead of a device."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _mounted
from ansible_collections.aimodel.kvm.plugins.module_utils import _tuning

STATIC = '# static\n/dev/vda /persist ext4 rw 0 0\n'
BASE_RO = 'aimodel-ro /run/aimodel/ro virtiofs ro,nosuid,nodev,nofail 0 0'
BASE_RW = 'aimodel-rw /run/aimodel/rw virtiofs rw,nosuid,nodev,nofail 0 0'


def rec(model, device='aimodel-ro', **changes):
    record = {'model': model, 'tag': 'aim-%s-1' % model, 'device': device, 'mount_path': '/mnt/%s' % model,
              'read_only': not device or device.split('-')[1] == 'ro', 'persist': True, 'guest_mount': True,
              'read_ahead_kb': 1024}
    record.update(changes)
    return record


def bind(record):
    key = record['device'][len('aimodel-'):]
    return _guest.fstab_bind_line('/run/aimodel/%s/%s' % (key, record['tag']), record['mount_path'],
                                  '/run/aimodel/%s' % key, record['read_only'])


class State:
    def __init__(self, *records):
        self.records = dict((r['model'], r) for r in records)


def test_fstab_key():
    assert _mounted.fstab_key(rec('a')) == '/run/aimodel/ro/aim-a-1'
    assert _mounted.fstab_key(rec('a', 'aimodel-rw-always')) == '/run/aimodel/rw-always/aim-a-1'
    assert _mounted.fstab_key(rec('a', None)) == 'aim-a-1', 'a model with a device of its own'


def test_fstab_for_the_first_model_adds_the_base_line_then_the_bind():
    a = rec('a')
    assert _mounted.fstab_for(STATIC, State(), a, None) == STATIC + BASE_RO + '\n' + bind(a) + '\n'


def test_fstab_for_a_second_model_adds_its_bind_only():
    a, b = rec('a'), rec('b')
    text = STATIC + BASE_RO + '\n' + bind(a) + '\n'
    assert _mounted.fstab_for(text, State(a), b, None) == text + bind(b) + '\n'
    assert _mounted.fstab_for(text, State(a), a, a) == text, 'nothing to change'


def test_fstab_for_a_new_mount_path_replaces_the_line_in_place():
    a, b = rec('a'), rec('b')
    text = STATIC + BASE_RO + '\n' + bind(a) + '\n' + bind(b) + '\n'
    moved = dict(a, mount_path='/srv/a')
    assert _mounted.fstab_for(text, State(a, b), moved, a) == STATIC + BASE_RO + '\n' + bind(moved) + '\n' + bind(b) + '\n'


def test_fstab_for_the_earlier_layout_replaces_the_own_device_line():
    old = rec('a', None)
    text = STATIC + 'aim-a-1 /mnt/a virtiofs ro,nofail 0 0\n'
    new = rec('a')
    assert _mounted.fstab_for(text, State(old), new, old) == STATIC + BASE_RO + '\n' + bind(new) + '\n'
    # A line of the model's own device goes even when the record already names the shared device.
    assert _mounted.fstab_for(text + BASE_RO + '\n' + bind(new) + '\n', State(new), new, new) == \
        STATIC + BASE_RO + '\n' + bind(new) + '\n'


def test_fstab_for_a_move_to_the_other_device_takes_the_unused_base_line():
    a = rec('a')
    moved = rec('a', 'aimodel-rw')
    text = STATIC + BASE_RO + '\n' + bind(a) + '\n'
    assert _mounted.fstab_for(text, State(a), moved, a) == STATIC + BASE_RW + '\n' + bind(moved) + '\n'
    # Another persisted model keeps the old device's base line.
    b = rec('b')
    text = STATIC + BASE_RO + '\n' + bind(a) + '\n' + bind(b) + '\n'
    assert _mounted.fstab_for(text, State(a, b), moved, a) == \
        STATIC + BASE_RO + '\n' + bind(b) + '\n' + BASE_RW + '\n' + bind(moved) + '\n'


def test_fstab_for_a_model_not_persisted():
    a, b = rec('a'), rec('b')
    text = STATIC + BASE_RO + '\n' + bind(a) + '\n' + bind(b) + '\n'
    # b stays persisted on the device: its base line stays.
    assert _mounted.fstab_for(text, State(a, b), dict(a, persist=False), a) == STATIC + BASE_RO + '\n' + bind(b) + '\n'
    # The last persisted model of the device: the base line goes with it.
    only = STATIC + BASE_RO + '\n' + bind(a) + '\n'
    assert _mounted.fstab_for(only, State(a), dict(a, persist=False), a) == STATIC
    assert _mounted.fstab_for(only, State(a), dict(a, guest_mount=False), a) == STATIC


def test_without_unused_base():
    a, b = rec('a'), rec('b', persist=False)
    text = STATIC + BASE_RO + '\n'
    assert _mounted.without_unused_base(text, State(a, b), 'aimodel-ro', 'b') == text
    assert _mounted.without_unused_base(text, State(a, b), 'aimodel-ro', 'a') == STATIC, 'b is not persisted'
    assert _mounted.without_unused_base(text, State(rec('c', 'aimodel-rw')), 'aimodel-ro', 'x') == STATIC


def test_read_ahead_of_a_device_is_the_largest_its_models_ask():
    state = State(rec('a', read_ahead_kb=4096), rec('b', read_ahead_kb=0), rec('c', 'aimodel-rw', read_ahead_kb=8192))
    assert _tuning.device_read_ahead(state.records, 'aimodel-ro', rec('b', read_ahead_kb=0)) == 4096
    assert _tuning.device_read_ahead(state.records, 'aimodel-ro', rec('d', read_ahead_kb=16384)) == 16384
    # The model's own earlier value does not count: it is what the run changes.
    assert _tuning.device_read_ahead(state.records, 'aimodel-ro', rec('a', read_ahead_kb=1024)) == 1024
    assert _tuning.device_read_ahead(State().records, 'aimodel-ro', rec('a', read_ahead_kb=0)) == 0
    assert _tuning.device_read_ahead(state.records, 'aimodel-rw', rec('e', 'aimodel-rw', read_ahead_kb=512)) == 8192


def test_fstab_for_puts_a_lost_or_wrong_base_line_back_before_the_binds():
    a, b = rec('a'), rec('b')
    lost = STATIC + bind(a) + '\n'
    assert _mounted.fstab_for(lost, State(a), b, None) == STATIC + BASE_RO + '\n' + bind(a) + '\n' + bind(b) + '\n'
    wrong = STATIC + bind(a) + '\n' + 'aimodel-ro /run/aimodel/ro virtiofs rw 0 0\n'
    assert _mounted.fstab_for(wrong, State(a), a, a) == STATIC + BASE_RO + '\n' + bind(a) + '\n'
