# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.aimodel.kvm.plugins.filter import meta_connection as mc


def test_filter_is_exposed():
    assert mc.FilterModule().filters() == {'meta_connection': mc.meta_connection}


@pytest.mark.parametrize('url, password, expected', [
    ('redis://:Xqv7%3AZrw9%2FWmk4%40Kpz2%25Jtn5@h:6379/1', '',
     {'meta_url': 'redis://h:6379/1', 'password': 'Xqv7:Zrw9/Wmk4@Kpz2%Jtn5'}),
    ('redis://:a:b/c@d@h/1', None, {'meta_url': 'redis://h/1', 'password': 'a:b/c@d'}),
    ('redis://h/1', 'p%40ss', {'meta_url': 'redis://h/1', 'password': 'p%40ss'}),
    ('sqlite3:///var/lib/a@b/meta.db', '', {'meta_url': 'sqlite3:///var/lib/a@b/meta.db', 'password': ''}),
])
def test_meta_connection(url, password, expected):
    assert mc.meta_connection(url, password) == expected


@pytest.mark.parametrize('url, password, field', [
    ('u:Zrw9@Kpz2/Wmk4@h:6379/1', '', 'boot mount v1 meta_url'),
    ('redis://:Zrw9%Kpz2@h/1', '', 'boot mount v1 meta_url'),
    ('redis://:Zrw9@h/1', 'Kpz2', 'boot mount v1 meta_password'),
])
def test_a_bad_url_names_the_field_and_hides_the_password(url, password, field):
    with pytest.raises(AnsibleFilterError) as err:
        mc.meta_connection(url, password, 'boot mount v1 meta_url', 'boot mount v1 meta_password')
    assert str(err.value).startswith(field + ': ')
    assert 'Zrw9' not in str(err.value) and 'Kpz2' not in str(err.value) and 'Wmk4' not in str(err.value)
