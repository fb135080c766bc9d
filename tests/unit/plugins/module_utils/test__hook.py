# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The libvirt hook: records and devices read from the domain XML, what it pins and what it leaves out, the
release of a stopped VM, and exit 0 with nothing on stdout whatever happens."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import io
import os
import re
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.aimodel.kvm.plugins.module_utils import _export
from ansible_collections.aimodel.kvm.plugins.module_utils import _hook

UUID = '7b18dc62-9343-4bae-82d5-0e211966de32'
OTHER = '0f6a43b2-1c1e-4d39-9a3e-5f0e8e2c3b11'
ROOT = '/var/lib/aimodel/exports'
VOLUMES = '/var/lib/aimodel/volumes'
NS = 'https://github.com/aimodel/kvm/mounts/v1'
HOOK_SCRIPT = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'roles', 'hypervisor', 'files',
                           'aimodel-qemu-hook')


def mount(model, volume='labvol', source_path=None, device='aimodel-ro', read_only=True, tag=None,
          mount_root=VOLUMES, volume_uuid=None):
    attrs = {'model': model, 'volume': volume, 'volume_uuid': volume_uuid,
             'source_path': source_path or 'models/%s' % model,
             'mount_path': '/mnt/%s' % model, 'tag': tag or 'aim-%s-0000beef' % model, 'device': device,
             'read_only': 'true' if read_only else 'false', 'mount_root': mount_root}
    return '<aimodel:mount %s/>' % ' '.join('%s="%s"' % (k, v) for k, v in sorted(attrs.items()) if v is not None)


def fs(source, tag):
    return ("<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/><source dir='%s'/>"
            "<target dir='%s'/></filesystem>" % (source, tag))


def domain_xml(mounts=(), devices=None, uuid=UUID, other_metadata=''):
    if devices is None:
        devices = [fs('%s/%s/ro' % (ROOT, uuid), 'aimodel-ro')]
    meta = ('<aimodel:mounts xmlns:aimodel="%s">%s</aimodel:mounts>' % (NS, ''.join(mounts))) if mounts else ''
    return ("<domain type='kvm'><name>vm1</name><uuid>%s</uuid><metadata>%s%s</metadata><devices>"
            "<disk type='file' device='disk'><source file='/var/lib/libvirt/images/vm1.img'/></disk>%s"
            "</devices></domain>" % (uuid, other_metadata, meta, ''.join(devices)))


def juicefs_mount(point, volume):
    return {'id': str(100 + len(point)), 'dev': '0:55', 'root': '/', 'source': 'JuiceFS:%s' % volume,
            'target': point, 'fstype': 'fuse.juicefs', 'options': ['ro'], 'propagation': ['shared:5'],
            'super_options': []}


class FakeHost:
    """The hook's Host on plain data: the mount table, which points answer, what is bound where."""

    def __init__(self, mounts=(), dead=(), refused=None, bound=()):
        self.root = ROOT
        self.mount_table = list(mounts)
        self.dead = set(dead)
        self.refused = dict(refused or {})    # (point, source_path) -> exception raised by pin
        self.binds = dict(((k, e), 'before') for k, e in bound)
        self.identities = {}     # point -> (name, UUID) of the volume mounted there
        self.identified = []
        self.views = []
        self.emptied = []
        self.released = []
        self.asked = []
        self.calls = []

    def mounts(self):
        return self.mount_table

    def answering(self, points, timeout):
        self.asked.append((list(points), timeout))
        return set(points) - self.dead

    def identity(self, point, timeout):
        self.identified.append(point)
        return self.identities.get(point)

    def prepare_view(self, uuid, key, mounts):
        self.calls.append(('view', key))
        self.views.append((uuid, key))

    def bound(self, uuid):
        return sorted(self.binds)

    def pin(self, uuid, key, entry, point, source_path, read_only):
        self.calls.append(('pin', key, entry))
        if (point, source_path) in self.refused:
            raise self.refused[(point, source_path)]
        self.binds[(key, entry)] = (point, source_path, read_only)

    def leave_empty(self, uuid, key, entry):
        self.binds.pop((key, entry), None)
        self.emptied.append((key, entry))

    def unbind(self, uuid, key, entry):
        self.calls.append(('unbind', key, entry))
        self.binds.pop((key, entry), None)

    def release(self, uuid):
        self.released.append(uuid)
        self.binds.clear()


def run_hook(host, xml_text, op='prepare', subop='begin', tmp_path=None, deadline=5.0):
    log_path = str(tmp_path / 'log' / 'hook.log')
    rc = _hook.main(['aimodel', 'vm1', op, subop, '-'], io.StringIO(xml_text), host=host, log_path=log_path,
                    deadline=deadline)
    lines = open(log_path).read().splitlines() if os.path.exists(log_path) else []
    return rc, lines


# --- the domain XML ----------------------------------------------------------------------------------

def test_parse_reads_the_records_and_the_views_of_this_vm():
    xml_text = domain_xml(
        [mount('m1'), mount('m2', device='aimodel-rw', read_only=False)],
        [fs('%s/%s/ro' % (ROOT, UUID), 'aimodel-ro'), fs('%s/%s/rw-always/' % (ROOT, UUID), 'aimodel-rw-always'),
         fs('%s/labvol/ro/models/old' % VOLUMES, 'aim-old-12345678'),
         fs('%s/%s/ro' % (ROOT, OTHER), 'aimodel-ro'), fs('%s/.stage/%s/ro' % (ROOT, UUID), 'aimodel-x')],
        other_metadata='<other:thing xmlns:other="https://example.invalid/x"><mount model="alien"/></other:thing>')
    uuid, records, keys, foreign = _hook.parse_domain(xml_text)
    assert uuid == UUID
    assert sorted(records) == ['m1', 'm2']
    assert records['m1']['device'] == 'aimodel-ro' and records['m1']['read_only'] is True
    assert keys == set(['ro', 'rw-always'])
    assert foreign == ['%s/%s/ro' % (ROOT, OTHER), '%s/.stage/%s/ro' % (ROOT, UUID)]


def test_parse_without_metadata_or_devices():
    uuid, records, keys, foreign = _hook.parse_domain(domain_xml(devices=[]))
    assert (uuid, records, keys, foreign) == (UUID, {}, set(), [])


@pytest.mark.parametrize('xml_text', ['<domain><name>x</name></domain>', '<domain', '',
                                      domain_xml(uuid='../../etc')])
def test_parse_refuses_a_domain_without_uuid_or_xml(xml_text):
    with pytest.raises(_hook.HookError):
        _hook.parse_domain(xml_text)


def test_pin_plan_skips_own_devices_and_refuses_unsafe_records():
    records = _hook.parse_domain(domain_xml([
        mount('good'), mount('rw', device='aimodel-rw', read_only=False, mount_root='/srv/vols'),
        mount('own', device=None),
        mount('dots', tag='..'), mount('slash', tag='aim-a/b'),
        mount('escape', source_path='models/../../etc'), mount('novol', volume='../x'),
        mount('mismatch', device='aimodel-ro', read_only=False), mount('alien', device='aimodel-xx'),
        mount('badkey', device='aimodel-ro-/../x'), mount('relroot', mount_root='vols'),
    ]))[1]
    pins, refused = _hook.pin_plan(records)
    assert [(p['model'], p['key'], p['point'], p['read_only']) for p in pins] == [
        ('good', 'ro', VOLUMES + '/labvol/ro', True), ('rw', 'rw', '/srv/vols/labvol/rw', False)]
    assert pins[0]['source_path'] == 'models/good' and pins[0]['entry'] == 'aim-good-0000beef'
    assert sorted(m for m, _why in refused) == ['alien', 'badkey', 'dots', 'escape', 'mismatch', 'novol',
                                                'relroot', 'slash']


def test_volume_state():
    point = VOLUMES + '/labvol/ro'
    assert _hook.volume_state([], point, 'labvol') == 'absent'
    assert _hook.volume_state([juicefs_mount(point, 'labvol')], point, 'labvol') == 'mounted'
    assert _hook.volume_state([juicefs_mount(point, 'other')], point, 'labvol') == 'foreign'
    tmpfs = dict(juicefs_mount(point, 'labvol'), fstype='tmpfs', source='tmpfs')
    assert _hook.volume_state([juicefs_mount(point, 'labvol'), tmpfs], point, 'labvol') == 'foreign'


# --- prepare begin ---------------------------------------------------------------------------------

def test_prepare_pins_what_is_mounted_and_answers(tmp_path):
    ro, rw = VOLUMES + '/labvol/ro', VOLUMES + '/labvol/rw'
    host = FakeHost(mounts=[juicefs_mount(ro, 'labvol'), juicefs_mount(rw, 'labvol')])
    rc, lines = run_hook(host, domain_xml([mount('m1'), mount('m2', device='aimodel-rw', read_only=False)]),
                         tmp_path=tmp_path)
    assert rc == 0
    assert host.views == [(UUID, 'ro'), (UUID, 'rw')]
    assert host.binds == {('ro', 'aim-m1-0000beef'): (ro, 'models/m1', True),
                          ('rw', 'aim-m2-0000beef'): (rw, 'models/m2', False)}
    assert host.asked == [([ro, rw], _hook.STATFS_TIMEOUT)]
    # The views come before any bind, and every line names the domain and the operation.
    assert host.calls[:2] == [('view', 'ro'), ('view', 'rw')]
    assert len(lines) == 3 and all(' vm1 prepare begin: ' in line for line in lines)
    assert 'model m1 pinned: %s/models/m1 at ro/aim-m1-0000beef' % ro in lines[0]
    assert lines[-1].endswith('2 of 2 models pinned, views ro, rw')


@pytest.mark.parametrize('op', ['migrate', 'restore'])
def test_incoming_migration_and_restore_prepare_too(tmp_path, op):
    ro = VOLUMES + '/labvol/ro'
    host = FakeHost(mounts=[juicefs_mount(ro, 'labvol')])
    assert run_hook(host, domain_xml([mount('m1')]), op=op, tmp_path=tmp_path)[0] == 0
    assert list(host.binds) == [('ro', 'aim-m1-0000beef')]


def test_prepare_leaves_out_what_it_cannot_pin(tmp_path):
    ro = VOLUMES + '/labvol/ro'
    host = FakeHost(mounts=[juicefs_mount(ro, 'labvol'), juicefs_mount(VOLUMES + '/other/ro', 'intruder'),
                            juicefs_mount(VOLUMES + '/hung/ro', 'hung')],
                    dead=[VOLUMES + '/hung/ro'],
                    refused={(ro, 'models/swapped'): _export.PinError(
                        'source_path models/swapped: models/swapped is a symbolic link (symbolic links in a volume '
                        'are never followed)'),
                        (ro, 'models/gone'): _export.PinError('source_path models/gone does not exist'),
                        (ro, 'models/busy'): OSError(16, 'binding at x: Device or resource busy')})
    records = [mount('ok'), mount('swapped'), mount('gone'), mount('busy'), mount('absent', volume='nowhere'),
               mount('foreign', volume='other'), mount('hung', volume='hung'), mount('unsafe', tag='..')]
    rc, lines = run_hook(host, domain_xml(records), tmp_path=tmp_path)
    assert rc == 0
    assert list(host.binds) == [('ro', 'aim-ok-0000beef')]
    assert sorted(host.emptied) == sorted(('ro', 'aim-%s-0000beef' % m)
                                          for m in ('swapped', 'gone', 'busy', 'absent', 'foreign', 'hung'))
    text = '\n'.join(lines)
    assert 'model swapped left out (ro/aim-swapped-0000beef is empty): source_path models/swapped: ' in text
    assert 'symbolic link' in text and 'Device or resource busy' in text
    assert 'volume nowhere is not mounted at %s/nowhere/ro' % VOLUMES in text
    assert 'what is mounted at %s/other/ro is not volume other' % VOLUMES in text
    assert 'volume hung at %s/hung/ro does not answer' % VOLUMES in text
    assert "model unsafe left out: its record is refused: tag '..' is not a name" in text
    assert lines[-1].endswith('1 of 8 models pinned, views ro')
    # The hung volume is asked once, like every other, and nothing is pinned from it.
    assert ('pin', 'ro', 'aim-hung-0000beef') not in host.calls


def test_prepare_pins_only_from_the_recorded_volume(tmp_path):
    ro = VOLUMES + '/labvol/ro'
    recorded, other = 'b28a9107-10c1-4904-931f-f4f367595740', '9d6b2f7e-0c4a-4d1e-8f3b-2a1c0e9d8b7a'
    host = FakeHost(mounts=[juicefs_mount(ro, 'labvol')])
    host.identities[ro] = ('labvol', other)
    records = [mount('m1', volume_uuid=recorded), mount('m2', volume_uuid=recorded), mount('old')]
    rc, lines = run_hook(host, domain_xml(records), tmp_path=tmp_path)
    assert rc == 0 and host.identified == [ro], 'asked once per volume mount'
    # A record of an earlier release (no UUID) is pinned as before; the others are not served from another volume.
    assert list(host.binds) == [('ro', 'aim-old-0000beef')]
    assert sorted(host.emptied) == [('ro', 'aim-m1-0000beef'), ('ro', 'aim-m2-0000beef')]
    assert 'the volume labvol mounted at %s is UUID %s, not the recorded %s' % (ro, other, recorded) in '\n'.join(lines)
    host = FakeHost(mounts=[juicefs_mount(ro, 'labvol')])
    host.identities[ro] = ('labvol', recorded)
    run_hook(host, domain_xml(records), tmp_path=tmp_path)
    assert sorted(host.binds) == [('ro', 'aim-m1-0000beef'), ('ro', 'aim-m2-0000beef'), ('ro', 'aim-old-0000beef')]


def test_prepare_makes_the_views_of_devices_without_records_and_unbinds_leftovers(tmp_path):
    host = FakeHost(bound=[('ro', 'aim-left-12345678'), ('rw', 'aim-old-12345678')])
    xml_text = domain_xml(devices=[fs('%s/%s/ro' % (ROOT, UUID), 'aimodel-ro'),
                                   fs('%s/%s/rw' % (ROOT, UUID), 'aimodel-rw'),
                                   fs('%s/%s/ro' % (ROOT, OTHER), 'aimodel-ro')])
    rc, lines = run_hook(host, xml_text, tmp_path=tmp_path)
    assert rc == 0
    assert host.views == [(UUID, 'ro'), (UUID, 'rw')]
    assert host.binds == {}
    assert ('unbind', 'ro', 'aim-left-12345678') in host.calls and ('unbind', 'rw', 'aim-old-12345678') in host.calls
    assert 'device source %s/%s/ro is in the export tree but not a view of this VM' % (ROOT, OTHER) in lines[0]
    assert lines[-1].endswith('0 of 0 models pinned, views ro, rw')


def test_a_model_pinned_before_is_bound_again_not_kept(tmp_path):
    """A bind left from before (libvirtd died before release) is replaced by a fresh walk, or emptied."""
    ro = VOLUMES + '/labvol/ro'
    host = FakeHost(mounts=[juicefs_mount(ro, 'labvol')], bound=[('ro', 'aim-m1-0000beef')],
                    refused={(ro, 'models/m1'): _export.PinError('a symbolic link')})
    run_hook(host, domain_xml([mount('m1')]), tmp_path=tmp_path)
    assert host.calls.index(('unbind', 'ro', 'aim-m1-0000beef')) < host.calls.index(('pin', 'ro', 'aim-m1-0000beef'))
    assert host.binds == {} and host.emptied == [('ro', 'aim-m1-0000beef')]


# --- release end and the other operations ------------------------------------------------------------

def test_release_end_unbinds_the_vm(tmp_path):
    host = FakeHost(bound=[('ro', 'aim-m1-0000beef')])
    rc, lines = run_hook(host, domain_xml([mount('m1')]), op='release', subop='end', tmp_path=tmp_path)
    assert rc == 0 and host.released == [UUID] and host.binds == {}
    assert lines[0].endswith('vm1 release end: 1 models unbound')


@pytest.mark.parametrize('op, subop', [('start', 'begin'), ('started', 'begin'), ('stopped', 'end'),
                                       ('reconnect', 'begin'), ('attach', 'begin'), ('prepare', 'end'),
                                       ('release', 'begin'), ('', '')])
def test_other_operations_do_nothing(tmp_path, op, subop):
    host = FakeHost(bound=[('ro', 'aim-m1-0000beef')])
    rc, lines = run_hook(host, domain_xml([mount('m1')]), op=op, subop=subop, tmp_path=tmp_path)
    assert rc == 0 and lines == [] and host.calls == [] and host.released == []


def test_short_argv_does_nothing(tmp_path):
    assert _hook.main(['aimodel'], io.StringIO(''), host=FakeHost(), log_path=str(tmp_path / 'h.log')) == 0
    assert not os.path.exists(str(tmp_path / 'h.log'))


# --- exit 0 on every error ---------------------------------------------------------------------------

class Broken(FakeHost):
    def __init__(self, where, **kwargs):
        super(Broken, self).__init__(**kwargs)
        self.where = where

    def _maybe(self, name):
        if self.where == name:
            raise RuntimeError('%s broke' % name)

    def mounts(self):
        self._maybe('mounts')
        return FakeHost.mounts(self)

    def prepare_view(self, uuid, key, mounts):
        self._maybe('prepare_view')
        FakeHost.prepare_view(self, uuid, key, mounts)

    def bound(self, uuid):
        self._maybe('bound')
        return FakeHost.bound(self, uuid)

    def unbind(self, uuid, key, entry):
        self._maybe('unbind')
        FakeHost.unbind(self, uuid, key, entry)

    def leave_empty(self, uuid, key, entry):
        self._maybe('leave_empty')
        FakeHost.leave_empty(self, uuid, key, entry)

    def release(self, uuid):
        self._maybe('release')
        FakeHost.release(self, uuid)


@pytest.mark.parametrize('where', ['mounts', 'prepare_view', 'bound', 'unbind', 'leave_empty'])
def test_prepare_exits_0_on_any_error(tmp_path, where):
    ro = VOLUMES + '/labvol/ro'
    host = Broken(where, mounts=[juicefs_mount(ro, 'labvol')], bound=[('ro', 'aim-x-12345678')],
                  refused={(ro, 'models/m2'): _export.PinError('refused')})
    rc, lines = run_hook(host, domain_xml([mount('m1'), mount('m2')]), tmp_path=tmp_path)
    assert rc == 0
    assert any('%s broke' % where in line for line in lines)


def test_release_exits_0_on_error(tmp_path):
    rc, lines = run_hook(Broken('release'), domain_xml(), op='release', subop='end', tmp_path=tmp_path)
    assert rc == 0 and lines[-1].endswith('failed: release broke')


@pytest.mark.parametrize('xml_text', ['', 'not xml', '<domain><name>vm1</name></domain>'])
def test_a_bad_domain_xml_is_logged_and_exits_0(tmp_path, xml_text):
    host = FakeHost()
    rc, lines = run_hook(host, xml_text, tmp_path=tmp_path)
    assert rc == 0 and host.calls == [] and len(lines) == 1 and ': failed: ' in lines[0]


def test_a_hung_host_does_not_hang_the_hook(tmp_path):
    release = threading.Event()

    class Hung(FakeHost):
        def pin(self, uuid, key, entry, point, source_path, read_only):
            release.wait(30)

    ro = VOLUMES + '/labvol/ro'
    started = time.monotonic()
    try:
        rc, lines = run_hook(Hung(mounts=[juicefs_mount(ro, 'labvol')]), domain_xml([mount('m1')]),
                             tmp_path=tmp_path, deadline=0.5)
    finally:
        release.set()
    assert rc == 0 and time.monotonic() - started < 5
    assert 'gave up after' in lines[-1]


def test_an_unwritable_log_is_not_an_error(tmp_path):
    (tmp_path / 'file').write_text('')
    host = FakeHost()
    assert _hook.main(['aimodel', 'vm1', 'release', 'end', '-'], io.StringIO(domain_xml()), host=host,
                      log_path=str(tmp_path / 'file' / 'hook.log')) == 0
    assert host.released == [UUID]


def test_nothing_on_stdout(tmp_path, capsys):
    run_hook(FakeHost(), domain_xml([mount('m1')]), tmp_path=tmp_path)
    run_hook(FakeHost(), 'not xml', tmp_path=tmp_path)
    assert capsys.readouterr().out == ''


def test_the_log_appends_one_line_per_event(tmp_path):
    log = _hook.Log(str(tmp_path / 'd' / 'hook.log'), 'vm1 prepare begin')
    log('one')
    log('two\nlines')
    log.close()
    log('three')
    log.close()
    lines = (tmp_path / 'd' / 'hook.log').read_text().splitlines()
    assert [line.split(' ', 1)[1] for line in lines] == ['vm1 prepare begin: one', 'vm1 prepare begin: two lines',
                                                         'vm1 prepare begin: three']
    assert oct(os.stat(str(tmp_path / 'd')).st_mode & 0o777) == oct(0o700)
    assert oct(os.stat(str(tmp_path / 'd' / 'hook.log')).st_mode & 0o777) == oct(0o600)


def test_answering_asks_every_point_at_once(tmp_path):
    missing = str(tmp_path / 'missing')
    assert _hook.Host.answering([str(tmp_path), missing], 2.0) == set([str(tmp_path)])
    assert _hook.Host.answering([], 2.0) == set()


# --- the entry script --------------------------------------------------------------------------------

def script_copy(tmp_path):
    with open(HOOK_SCRIPT) as handle:
        text = handle.read()
    assert "LIBRARY = '/usr/local/lib/aimodel/hook'" in text
    copy = tmp_path / 'aimodel-qemu-hook'
    copy.write_text(text.replace("'/usr/local/lib/aimodel/hook'", repr(str(tmp_path / 'lib'))))
    return str(copy)


def test_the_entry_script_exits_0_without_its_library(tmp_path):
    proc = subprocess.run([sys.executable, '-I', script_copy(tmp_path), 'vm1', 'prepare', 'begin', '-'],
                          input=domain_xml().encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=60, check=False)
    assert proc.returncode == 0 and proc.stdout == b''
    assert b'aimodel hook: ' in proc.stderr


def test_the_entry_script_runs_main_of_its_library(tmp_path):
    package = tmp_path / 'lib' / 'ansible_collections' / 'aimodel' / 'kvm' / 'plugins' / 'module_utils'
    package.mkdir(parents=True)
    for level in (package, package.parent, package.parent.parent, package.parent.parent.parent,
                  package.parent.parent.parent.parent):
        (level / '__init__.py').write_text('')
    (package / '_hook.py').write_text('import sys\n\ndef main(argv, stdin):\n'
                                      '    sys.stderr.write("main %s %s" % (argv[1:], stdin.read()))\n'
                                      '    return 0\n')
    proc = subprocess.run([sys.executable, '-I', script_copy(tmp_path), 'vm1', 'started', 'begin', '-'],
                          input=b'<domain/>', stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                          check=False)
    assert proc.returncode == 0 and proc.stdout == b''
    assert proc.stderr == b"main ['vm1', 'started', 'begin', '-'] <domain/>"


def test_the_hypervisor_role_installs_every_module_the_hook_imports():
    # The hook runs from a private copy of these files: one it imports but the role does not copy makes the hook
    # exit 0 without doing anything, and every VM then starts without its models.
    roles = os.path.join(os.path.dirname(HOOK_SCRIPT), '..', 'vars', 'main.yml')
    with open(roles) as handle:
        listed = re.search(r'^_hypervisor_hook_modules: \[(.*)\]$', handle.read(), re.M).group(1)
    installed = set(name.strip() for name in listed.split(','))
    utils = os.path.dirname(_hook.__file__)
    needed, pending = set(), ['_hook.py']
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        needed.add(name)
        with open(os.path.join(utils, name)) as handle:
            text = handle.read()
        pending.extend('%s.py' % m for m in re.findall(r'plugins\.module_utils(?: import |\.)(_[a-z]+)', text))
    assert needed <= installed, 'not installed: %s' % sorted(needed - installed)


def test_pin_plan_skips_detached_records():
    records = _hook.parse_domain(domain_xml([mount('good'), mount('away')]))[1]
    records['away']['detached'] = 'true'
    pins, refused = _hook.pin_plan(records)
    assert [p['model'] for p in pins] == ['good'] and refused == []
