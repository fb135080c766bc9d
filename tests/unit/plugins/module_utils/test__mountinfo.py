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
    assert mounts[0] == {'id': '28', 'dev': '0:24', 'root': '/', 'source': 'aim-a', 'target': '/mnt/with space',
                         'fstype': 'virtiofs', 'options': ['ro', 'relatime'], 'propagation': ['shared:5'],
                         'super_options': ['rw']}
    assert len(mounts) == 2 and mounts[1]['target'] == '/proc' and mounts[1]['propagation'] == []


def test_parse_mountinfo_root_and_propagation_of_a_bind():
    # A guest's bind of a model from a device's base mount: the same source and device, the entry as its root.
    mounts = _mountinfo.parse_mountinfo(
        '40 30 0:52 / /run/aimodel/ro ro,nosuid,nodev shared:7 - virtiofs aimodel-ro rw\n'
        '41 30 0:52 /aim-m1-ca0df2c9 /mnt/models/m1 ro,nosuid,nodev shared:7 master:3 - virtiofs aimodel-ro rw\n'
        '42 30 0:52 /dir\\040x /mnt/x rw - virtiofs aimodel-rw rw\n')
    assert [(m['root'], m['propagation']) for m in mounts] == [
        ('/', ['shared:7']), ('/aim-m1-ca0df2c9', ['shared:7', 'master:3']), ('/dir x', [])]
    assert mounts[1]['dev'] == mounts[0]['dev'] and mounts[1]['source'] == 'aimodel-ro'


def test_escape_is_the_inverse_of_unescape():
    assert _mountinfo.escape('/mnt/a b\\c\td') == '/mnt/a\\040b\\134c\\011d'
    assert _mountinfo.unescape(_mountinfo.escape('/mnt/a b\\c\td')) == '/mnt/a b\\c\td'


def test_visible_at_is_the_last_mount_at_a_path():
    mounts = _mountinfo.parse_mountinfo('1 0 0:1 / /a rw - tmpfs one rw\n2 1 0:2 / /a rw - tmpfs two rw\n')
    assert _mountinfo.visible_at(mounts, '/a')['source'] == 'two'
    assert _mountinfo.visible_at(mounts, '/b') is None
