# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The mount record in the domain metadata."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.aimodel.kvm.plugins.module_utils import _record


def test_record_round_trip():
    rec = {'model': 'm', 'volume': 'v', 'source_path': 'models/m', 'mount_path': '/mnt/m', 'tag': 'aim-m-1',
           'read_only': False, 'persist': True, 'guest_mount': True, 'cache': 'auto', 'read_ahead_kb': 1024,
           'created': 't', 'updated': 't'}
    parsed = _record.parse(_record.render({'m': rec}))
    assert parsed == {'m': rec}
    # A record written before read_ahead_kb existed reads as None (and differs from any desired value).
    old = dict(rec)
    del old['read_ahead_kb']
    assert _record.parse(_record.render({'m': old}))['m']['read_ahead_kb'] is None
    assert _record.same(parsed['m'], dict(rec, updated='later'))
    assert not _record.same(parsed['m'], dict(rec, mount_path='/mnt/x'))
    assert _record.parse(None) == {}
