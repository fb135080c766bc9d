# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one mountinfo reader, for the host and the guest."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.aimodel.kvm.plugins.module_utils import _mountinfo


def test_parse_mountinfo_unescapes():
    mounts = _mountinfo.parse_mountinfo('28 1 0:24 / /mnt/with\\040space ro,relatime shared:5 - virtiofs aim-a rw\n'
                                        '3 1 0:3 / /proc rw - proc proc rw\n'
                                        'garbage line\n')
    assert mounts[0] == {'id': '28', 'dev': '0:24', 'source': 'aim-a', 'target': '/mnt/with space', 'fstype': 'virtiofs',
                         'options': ['ro', 'relatime'], 'super_options': ['rw']}
    assert len(mounts) == 2 and mounts[1]['target'] == '/proc'


def test_escape_is_the_inverse_of_unescape():
    assert _mountinfo.escape('/mnt/a b\\c\td') == '/mnt/a\\040b\\134c\\011d'
    assert _mountinfo.unescape(_mountinfo.escape('/mnt/a b\\c\td')) == '/mnt/a b\\c\td'


def test_visible_at_is_the_last_mount_at_a_path():
    mounts = _mountinfo.parse_mountinfo('1 0 0:1 / /a rw - tmpfs one rw\n2 1 0:2 / /a rw - tmpfs two rw\n')
    assert _mountinfo.visible_at(mounts, '/a')['source'] == 'two'
    assert _mountinfo.visible_at(mounts, '/b') is None
