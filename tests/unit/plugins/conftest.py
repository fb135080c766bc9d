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

from ansible_collections.aimodel.kvm.plugins.module_utils import _export
from ansible_collections.aimodel.kvm.plugins.module_utils import _hostpath
from ansible_collections.aimodel.kvm.plugins.module_utils import _juicefs
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _lock
from ansible_collections.aimodel.kvm.tests.unit.plugins.fakes import FAKE_IDENTITY, FakeConnection, FakeDomain, FakeTree


class ExitJson(Exception):
    @property
    def result(self):
        return self.args[0]


class FailJson(Exception):
    @property
    def result(self):
        return self.args[0]


class FakeHost:
    """The host side (``_juicefs.Host``): which volume mount points are up, which model directories exist, and
    what is pinned into the export tree of each VM.

    A pin remembers the volume mount it was made on: once the volume is mounted again, the pin is ``stale``;
    while the volume is dead, ``dead``. ``binds[(uuid, key, entry)]['state']`` forces an entry's state."""

    def __init__(self):
        self.state = {}
        self.dirs = set()
        self.refused = {}       # <point>/<source_path> -> why it cannot be pinned (a symlink, ...)
        self.mount_calls = []
        self.mount_ids = {}
        self.unmounted = []
        self.fail_unmount = None
        self.binds = {}         # (uuid, key, entry) -> what is bound there
        self.views = set()      # (uuid, key) of the export directories that exist
        self.calls = []         # pin, unpin and remove_view, in order
        self.fail_pin = None
        self._next_bind = 500
        self.engines = {}       # meta_url -> (name, UUID) its engine reports (default: FAKE_IDENTITY)
        self.identities = {}    # mount point -> (name, UUID) of the volume mounted there (default: FAKE_IDENTITY)
        self.engine_calls = []

    @staticmethod
    def find_client(explicit=None):
        return explicit or '/usr/local/bin/juicefs'

    def describe(self, point):
        return 'fuse.other %s' % point if self.state.get(point) == 'foreign' else 'nothing'

    def lazy_unmount(self, point):
        self.unmounted.append(point)
        self.state.pop(point, None)

    def unmount(self, point):
        if self.fail_unmount:
            raise _juicefs.VolumeError('cannot unmount %s: %s' % (point, self.fail_unmount))
        self.unmounted.append(point)
        self.state.pop(point, None)

    @staticmethod
    def warmup(client, path):
        return None

    def status(self, point, volume_name=None, timeout=5.0):
        return self.state.get(point, 'absent')

    def mounted_identity(self, point):
        return self.identities.get(point, FAKE_IDENTITY) if self.state.get(point) == 'mounted' else None

    def engine_identity(self, client, meta_url, password):
        self.engine_calls.append(meta_url)
        found = self.engines.get(meta_url, FAKE_IDENTITY)
        if isinstance(found, Exception):
            raise found
        return found

    def mount(self, client, volume, meta_url, password, read_only, root=None, **kwargs):
        point = _juicefs.mountpoint(volume, read_only, root)
        self.mount_calls.append({'volume': volume, 'meta_url': meta_url, 'password': password, 'point': point})
        self.state[point] = 'mounted'
        self.mount_ids[point] = str(100 + len(self.mount_calls))
        return point

    def mount_id(self, point):
        return self.mount_ids.get(point, '42') if self.state.get(point) == 'mounted' else None

    def check_source(self, point, source_path):
        path = os.path.join(point, source_path)
        if path in self.refused:
            raise _juicefs.VolumeError('source_path %s: %s' % (source_path, self.refused[path]))
        return True if path in self.dirs else None

    # --- the export tree ---------------------------------------------------------------------------
    def pin(self, uuid, key, entry, point, source_path, read_only):
        self.calls.append(('pin', key, entry))
        if self.fail_pin:
            raise _juicefs.VolumeError('binding %s into the export tree of the VM failed: %s' % (source_path, self.fail_pin))
        if self.check_source(point, source_path) is None or self.state.get(point) != 'mounted':
            raise _juicefs.VolumeError('source_path %s does not exist in the volume mounted at %s' % (source_path, point))
        self._next_bind += 1
        self.binds[(uuid, key, entry)] = {'point': point, 'source_path': source_path, 'read_only': read_only,
                                          'id': self._next_bind, 'volume': self.mount_id(point)}
        self.views.add((uuid, key))

    def unpin(self, uuid, key, entry):
        self.calls.append(('unpin', key, entry))
        self.binds.pop((uuid, key, entry), None)

    def remove_view(self, uuid, key):
        self.calls.append(('remove_view', key))
        self.views.discard((uuid, key))

    def entry_state(self, uuid, key, entry, point, source_path):
        bind = self.binds.get((uuid, key, entry))
        if bind is None:
            return 'missing'
        if bind.get('state'):
            return bind['state']
        if (bind['point'], bind['source_path']) != (point, source_path) or bind['volume'] != self.mount_id(point):
            return 'dead' if self.state.get(point) == 'dead' and bind['point'] == point else 'stale'
        return 'pinned'

    def entry_id(self, uuid, key, entry):
        bind = self.binds.get((uuid, key, entry))
        return '%d:0:%s' % (bind['id'], bind['volume']) if bind else None

    def bound_entries(self, uuid):
        return sorted((key, entry) for (u, key, entry) in self.binds if u == uuid)

    def entries_in(self, view):
        """The entries the export directory ``view`` serves now (what a guest bind can find below the base)."""
        return set(entry for (uuid, key, entry) in self.binds if _export.view_dir(uuid, key) == view)

    def pinned(self, uuid):
        """{entry: (key, source_path, read_only)} of what is pinned for this VM."""
        return dict((entry, (key, b['source_path'], b['read_only'])) for (u, key, entry), b in self.binds.items()
                    if u == uuid)


@pytest.fixture
def host(monkeypatch):
    fake = FakeHost()
    monkeypatch.setattr(_juicefs, 'Host', lambda run_command=None: fake)
    # The host paths the modules check (_hostpath): a fake tree, only / at first (root's, 0755).
    fake.tree = FakeTree()
    monkeypatch.setattr(_hostpath, 'LSTAT', fake.tree.lstat)
    monkeypatch.setattr(_hostpath, 'READLINK', fake.tree.readlink)
    fake.dirs.add('/var/lib/aimodel/volumes/labvol/ro/models/m1')
    fake.dirs.add('/var/lib/aimodel/volumes/labvol/ro/models/m2')
    fake.dirs.add('/var/lib/aimodel/volumes/labvol/rw/models/m1')
    return fake


@pytest.fixture
def domain(monkeypatch, tmp_path, host):
    dom = FakeDomain()
    dom.host = host
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
