# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Both modules on a host whose Python cannot import the libvirt binding: the error says which role installs it."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import pytest

from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.modules import vm_model_mount
from ansible_collections.aimodel.kvm.plugins.modules import vm_model_mount_info
from ansible_collections.aimodel.kvm.tests.unit.plugins.modules.test_vm_model_mount import ARGS


@pytest.mark.parametrize('module, args', [(vm_model_mount, ARGS), (vm_model_mount_info, {'vm': 'vm1'})],
                         ids=['vm_model_mount', 'vm_model_mount_info'])
def test_a_missing_binding_names_the_role_that_installs_it(module, args, run_module, monkeypatch):
    def no_connection(_uri):
        raise AssertionError('the module connected to libvirt without the binding')
    monkeypatch.setattr(_libvirt, 'HAS_LIBVIRT', False)
    monkeypatch.setattr(_libvirt, 'LIBVIRT_IMPORT_ERROR', "ModuleNotFoundError: No module named 'libvirt'")
    monkeypatch.setattr(_libvirt, 'connect', no_connection)
    result = run_module(module, args)
    assert result['failed'] is True
    msg = result['msg']
    assert msg.startswith('The libvirt Python binding (libvirt-python) is missing: the role aimodel.kvm.hypervisor '
                          'installs it for the Python the modules run under (ansible-playbook -i INVENTORY '
                          'aimodel.kvm.prepare_hosts runs that role on the hypervisors). ')
    # Ansible's own message follows: the host's Python that lacks it.
    assert 'Failed to import the required Python library (libvirt-python)' in msg
    assert result['exception'] == "ModuleNotFoundError: No module named 'libvirt'"
