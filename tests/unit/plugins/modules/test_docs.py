# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the documentation promises about both modules: the README's module_defaults example is accepted by both
argument specs as written, the action groups hold both modules, the shared options are one spec, and every
returned list of dicts documents what its elements contain."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import os
import re

import pytest
import yaml

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.aimodel.kvm.plugins.module_utils import _options
from ansible_collections.aimodel.kvm.plugins.modules import vm_model_mount
from ansible_collections.aimodel.kvm.plugins.modules import vm_model_mount_info
from ansible_collections.aimodel.kvm.plugins.modules import vm_model_mounts

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
MODULES = {'vm_model_mount': vm_model_mount, 'vm_model_mount_info': vm_model_mount_info, 'vm_model_mounts': vm_model_mounts}
GROUP = 'group/aimodel.kvm.kvm'


def _readme_plays():
    """The YAML blocks of the README that set module_defaults for the group, parsed."""
    with open(os.path.join(ROOT, 'README.md')) as handle:
        text = handle.read()
    blocks = [yaml.safe_load(block) for block in re.findall(r'```yaml\n(.*?)```', text, re.DOTALL) if GROUP in block]
    return [play for block in blocks for play in block if GROUP in (play.get('module_defaults') or {})]


def test_the_readme_example_is_accepted_by_every_module_as_written():
    plays = _readme_plays()
    assert plays, 'the README has no example with module_defaults for %s' % GROUP
    seen = set()
    for play in plays:
        defaults = play['module_defaults'][GROUP]
        assert set(['uri', 'volume', 'agent_timeout']) <= set(defaults), defaults
        for task in play['tasks']:
            (name, module), = [(key.split('.')[-1], MODULES[key.split('.')[-1]]) for key in task
                               if key.startswith('aimodel.kvm.')]
            seen.add(name)
            args = dict(defaults, **task['aimodel.kvm.' + name])
            result = ArgumentSpecValidator(module.argument_spec()).validate(args)
            assert not result.error_messages, '%s: %s' % (name, result.error_messages)
            # The defaults alone (what the group gives each task) are accepted too, but for a required option.
            alone = ArgumentSpecValidator(module.argument_spec()).validate(dict(defaults))
            assert [m for m in alone.error_messages if 'missing required' not in m] == [], (name, alone.error_messages)
    assert seen == set(MODULES)


def test_both_action_groups_hold_every_module():
    with open(os.path.join(ROOT, 'meta', 'runtime.yml')) as handle:
        groups = yaml.safe_load(handle)['action_groups']
    assert sorted(groups['kvm']) == sorted(list(MODULES) + ['vm_model_host_check', 'vm_model_volume_release'])
    assert groups['vm_model_mount'] == [{'metadata': {'extend_group': ['kvm']}}]


@pytest.mark.parametrize('other', [vm_model_mount_info, vm_model_mounts], ids=['vm_model_mount_info', 'vm_model_mounts'])
def test_the_shared_options_are_one_spec_in_every_module(other):
    mount, info = vm_model_mount.argument_spec(), other.argument_spec()
    for option in ('uri', 'vm', 'volume', 'agent_timeout'):
        for key in ('type', 'default', 'aliases', 'fallback'):
            assert mount[option].get(key) == info[option].get(key), (option, key)
    assert mount['vm']['aliases'] == info['vm']['aliases'] == ['name', 'guest']
    assert mount['agent_timeout']['default'] == info['agent_timeout']['default'] == _options.AGENT_TIMEOUT
    assert set(mount['volume']['options']) == set(info['volume']['options'])
    for name, sub in mount['volume']['options'].items():
        other = info['volume']['options'][name]
        assert (sub['type'], sub.get('default'), sub.get('no_log')) == \
            (other['type'], other.get('default'), other.get('no_log')), name
    assert 'mount_root' not in info, 'the modules take mount_root inside volume'
    assert 'never' not in mount['cache']['choices']


def test_an_entry_of_the_set_takes_the_options_of_one_model():
    mount, entry = vm_model_mount.argument_spec(), vm_model_mounts.argument_spec()['mounts']['options']
    for name, spec in entry.items():
        assert spec == mount[name], name
    for name in ('persist', 'guest_mount', 'force', 'warmup', 'cache', 'read_ahead_kb', 'lock_timeout', 'guest_timeout',
                 'device_timeout'):
        assert vm_model_mounts.argument_spec()[name] == mount[name], name


def _lists_without_contains(returns, path=''):
    """The paths of every returned value, at any depth, that is a list of dicts without ``contains``."""
    missing = []
    for name, value in (returns or {}).items():
        where = '%s%s' % (path, name)
        if value.get('type') == 'list' and value.get('elements') == 'dict' and not value.get('contains'):
            missing.append(where)
        missing.extend(_lists_without_contains(value.get('contains'),
                                               where + ('[].' if value.get('type') == 'list' else '.')))
    return missing


@pytest.mark.parametrize('name', sorted(MODULES))
def test_every_returned_list_of_dicts_says_what_it_contains(name):
    returns = yaml.safe_load(MODULES[name].RETURN)
    assert returns, name
    assert _lists_without_contains(returns) == []


def test_a_list_of_dicts_without_contains_is_found_at_any_depth():
    returns = {'a': {'type': 'dict', 'contains': {'b': {'type': 'list', 'elements': 'dict'}}},
               'c': {'type': 'list', 'elements': 'dict', 'contains': {'d': {'type': 'list', 'elements': 'dict'}}},
               'e': {'type': 'list', 'elements': 'str'}}
    assert _lists_without_contains(returns) == ['a.b', 'c[].d']
