# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The metadata URL of a volume split as the modules split it (``_spec.meta_connection``): for what the roles write
outside the modules, the juicefs_client role's boot mounts."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible.errors import AnsibleFilterError

from ansible_collections.aimodel.kvm.plugins.module_utils import _spec


def meta_connection(meta_url, meta_password='', field='meta_url', password_field='meta_password'):
    """{'meta_url': the URL without password, 'password': the password, decoded, or ''}; a bad URL fails with the
    field's name and the password masked."""
    try:
        url, password, _forms = _spec.meta_connection(meta_url, meta_password or None, field, password_field)
    except _spec.SpecError as exc:
        raise AnsibleFilterError(str(exc))
    return {'meta_url': url, 'password': password or ''}


class FilterModule(object):
    """The metadata URL filter."""

    def filters(self):
        return {'meta_connection': meta_connection}
