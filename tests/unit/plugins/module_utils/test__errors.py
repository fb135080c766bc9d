# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Every expected failure of module_utils is one AimodelError; bad input names its field."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import pytest

from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _juicefs
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _lock
from ansible_collections.aimodel.kvm.plugins.module_utils import _plan
from ansible_collections.aimodel.kvm.plugins.module_utils import _record
from ansible_collections.aimodel.kvm.plugins.module_utils import _spec
from ansible_collections.aimodel.kvm.plugins.module_utils._errors import AimodelError


@pytest.mark.parametrize('error', [_guest.GuestError, _juicefs.VolumeError, _libvirt.VirtError, _lock.LockTimeout,
                                   _plan.OperationFailed, _record.RecordError])
def test_every_error_is_an_aimodel_error(error):
    exc = error('it broke')
    assert isinstance(exc, AimodelError) and str(exc) == 'it broke' and exc.field is None


def test_spec_error_names_its_field():
    with pytest.raises(AimodelError) as info:
        _spec.normalize_mount_path('relative/path')
    assert info.value.field == 'mount_path' and str(info.value).startswith('mount_path: ')
