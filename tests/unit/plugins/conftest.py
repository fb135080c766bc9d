# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import os

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.aimodel.kvm.plugins.module_utils import _juicefs
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _lock
from ansible_collections.aimodel.kvm.tests.unit.plugins.fakes import FakeConnection, FakeDomain


class ExitJson(Exception):
    @property
    def result(self):
        return self.args[0]


class FailJson(Exception):
    @property
    def result(self):
        return self.args[0]


class FakeHost:
    """The host volume side (``_juicefs.Host``): which mount points are up and which model directories exist."""

    def __init__(self):
        self.state = {}
        self.dirs = set()
        self.mount_calls = []
        self.mount_ids = {}
        self.unmounted = []

    @staticmethod
    def find_client(explicit=None):
        return explicit or '/usr/local/bin/juicefs'

    def describe(self, point):
        return 'fuse.other %s' % point if self.state.get(point) == 'foreign' else 'nothing'

    def lazy_unmount(self, point):
        self.unmounted.append(point)
        self.state.pop(point, None)

    @staticmethod
    def warmup(client, path):
        return None

    def status(self, point, volume_name=None, timeout=5.0):
        return self.state.get(point, 'absent')

    def mount(self, client, volume, meta_url, password, read_only, root=None, **kwargs):
        point = _juicefs.mountpoint(volume, read_only, root)
        self.mount_calls.append({'volume': volume, 'meta_url': meta_url, 'password': password, 'point': point})
        self.state[point] = 'mounted'
        self.mount_ids[point] = str(100 + len(self.mount_calls))
        return point

    def mount_id(self, point):
        return self.mount_ids.get(point, '42') if self.state.get(point) == 'mounted' else None

    def resolve_source(self, point, source_path):
        path = os.path.join(point, source_path)
        return path if path in self.dirs else None


@pytest.fixture
def host(monkeypatch):
    fake = FakeHost()
    monkeypatch.setattr(_juicefs, 'Host', lambda: fake)
    fake.dirs.add('/var/lib/aimodel/volumes/labvol/ro/models/m1')
    fake.dirs.add('/var/lib/aimodel/volumes/labvol/ro/models/m2')
    fake.dirs.add('/var/lib/aimodel/volumes/labvol/rw/models/m1')
    return fake


@pytest.fixture
def domain(monkeypatch, tmp_path):
    dom = FakeDomain()
    conn = FakeConnection(dom)
    monkeypatch.setattr(_libvirt, 'HAS_LIBVIRT', True)
    monkeypatch.setattr(_libvirt, 'connect', lambda uri: conn)
    monkeypatch.setattr(_lock, 'DEFAULT_LOCK_DIR', str(tmp_path / 'locks'))
    return dom


@pytest.fixture
def run_module(monkeypatch):
    def exit_json(_self, **kwargs):
        kwargs.setdefault('changed', False)
        raise ExitJson(kwargs)

    def fail_json(_self, **kwargs):
        kwargs['failed'] = True
        raise FailJson(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)

    def run(module, args, check=False, diff=False):
        args = dict(args)
        args['_ansible_check_mode'] = check
        args['_ansible_diff'] = diff
        with patch_module_args(args):
            try:
                module.main()
            except ExitJson as exc:
                return exc.result
            except FailJson as exc:
                return exc.result
        raise AssertionError('the module neither exited nor failed')

    return run
