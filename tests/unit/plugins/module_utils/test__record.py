# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The mount record in the domain metadata."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.aimodel.kvm.plugins.module_utils import _record


def test_record_round_trip():
    rec = {'model': 'm', 'volume': 'v', 'volume_uuid': 'b28a9107-10c1-4904-931f-f4f367595740',
           'meta_url': 'redis://u@h:6379/1', 'source_path': 'models/m', 'mount_path': '/mnt/m', 'tag': 'aim-m-1',
           'device': 'aimodel-rw', 'read_only': False, 'persist': True, 'guest_mount': True, 'cache': 'auto',
           'read_ahead_kb': 1024, 'mount_root': '/var/lib/aimodel/volumes', 'created': 't', 'updated': 't'}
    parsed = _record.parse(_record.render({'m': rec}))
    assert parsed == {'m': rec}
    # A record written before read_ahead_kb existed reads as None (and differs from any desired value).
    old = dict(rec)
    del old['read_ahead_kb']
    assert _record.parse(_record.render({'m': old}))['m']['read_ahead_kb'] is None
    assert _record.same(parsed['m'], dict(rec, updated='later'))
    assert not _record.same(parsed['m'], dict(rec, mount_path='/mnt/x'))
    assert _record.parse(None) == {}


def test_a_record_of_the_earlier_layout_has_no_device():
    rec = {'model': 'm', 'volume': 'v', 'volume_uuid': 'b28a9107-10c1-4904-931f-f4f367595740',
           'meta_url': 'redis://u@h:6379/1', 'source_path': 'models/m', 'mount_path': '/mnt/m', 'tag': 'aim-m-1',
           'read_only': True, 'persist': True, 'guest_mount': True, 'cache': 'auto', 'read_ahead_kb': 1024}
    parsed = _record.parse(_record.render({'m': rec}))['m']
    assert parsed['device'] is None and parsed['mount_root'] is None
    # It is not the mount a run asks for now, which names the shared device: the run converges it.
    assert not _record.same(parsed, dict(rec, device='aimodel-ro', mount_root='/var/lib/aimodel/volumes'))
    assert _record.public(dict(parsed, verified='x'))['device'] is None
    assert 'verified' not in _record.public(dict(parsed, verified='x'))


def test_a_detached_record_round_trips_and_is_not_its_mount():
    rec = {'model': 'm1', 'volume': 'v', 'source_path': 'models/m1', 'mount_path': '/mnt/m1', 'tag': 'aim-m1-1'}
    away = dict(rec, detached='true')
    parsed = _record.parse(_record.render({'m1': away}))['m1']
    plain = _record.parse(_record.render({'m1': rec}))['m1']
    assert _record.is_detached(parsed) and not _record.is_detached(plain)
    assert 'detached' not in _record.public(parsed)
    assert not _record.same(parsed, plain) and _record.same(parsed, dict(plain, detached='true'))
    assert not _record.is_detached(None)
    assert list(_record.attached({'m1': away, 'm2': dict(rec, model='m2')})) == ['m2']
