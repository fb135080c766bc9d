# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The libvirt QEMU hook: the VM's export tree rebuilt from its record before QEMU and virtiofsd start, and
its binds taken away once the VM is gone.

libvirt runs ``/etc/libvirt/hooks/qemu.d/aimodel`` (installed by roles/hypervisor) with ``<domain> <operation>
<sub-operation> <extra>`` and the domain XML on stdin. The binds of the export tree live only in the host's mount
table: after a host reboot, or once the VM stopped, they are gone.

- ``prepare begin``, ``migrate begin`` (incoming) and ``restore begin``: every view that the VM's devices serve
  (a <filesystem> whose source is the VM's directory of the export tree) and every view of a recorded model is
  made (read-only, see ``_export.prepare_view``), so that virtiofsd can start. Whatever is bound in the tree is
  taken away, then each recorded model of a shared device (not a detached one) is pinned from its host volume
  mount when that volume is mounted and answers. A model that cannot be pinned (volume not mounted, directory missing or refused, any
  error) is left out: its entry is an empty directory, and the reason is logged.
- ``release end``: the VM's models are unbound (``_export.release``), so that a stopped VM pins no volume.

The hook always exits 0 (a non-zero exit would fail the VM's start), prints nothing on stdout (libvirt would
take it for a replacement domain XML), never mounts a volume (it has no secret), never calls libvirt (libvirt
waits for the hook) and gives up after ``DEADLINE`` seconds. One line per event is appended to ``LOG_PATH``.

Standard library and the collection's host code only (_export, _record, _juicefs, _mountinfo, _errors): the
hook runs a private copy of these files on a hypervisor without Ansible.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import errno
import os
import re
import threading
import time
import xml.etree.ElementTree as ET

from ansible_collections.aimodel.kvm.plugins.module_utils import _export
from ansible_collections.aimodel.kvm.plugins.module_utils import _juicefs
from ansible_collections.aimodel.kvm.plugins.module_utils import _record
from ansible_collections.aimodel.kvm.plugins.module_utils._mountinfo import visible_at

LOG_PATH = '/var/log/aimodel/hook.log'
# The whole hook, then each statfs of a volume mount (all volumes are asked at once).
DEADLINE = 6.0
STATFS_TIMEOUT = 2.0
PREPARE = 'prepare'
RELEASE = 'release'
OPERATIONS = {
    ('prepare', 'begin'): PREPARE,
    ('migrate', 'begin'): PREPARE,
    ('restore', 'begin'): PREPARE,
    ('release', 'end'): RELEASE,
}

_UUID_RE = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
_KEY_RE = re.compile(r'^(ro|rw)(-[a-z0-9]+)?$')
_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]*$')


class HookError(Exception):
    """A domain XML the hook cannot work with."""


# --- the domain XML (pure) -------------------------------------------------------------------------

def parse_domain(xml_text, root=None):
    """(uuid, records, keys, foreign) of a domain XML: the records of its metadata (model -> record), the keys
    of the views that its virtiofs devices serve from this VM's directory of the export tree, and the sources of
    devices elsewhere in the export tree (another VM's directory, or no view)."""
    root = root or _export.DEFAULT_ROOT
    try:
        domain = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise HookError('the domain XML is not valid XML: %s' % exc)
    uuid = (domain.findtext('uuid') or '').strip().lower()
    if not _UUID_RE.match(uuid):
        raise HookError('the domain XML has no UUID')
    records = {}
    metadata = domain.find('metadata')
    for elem in (metadata if metadata is not None else []):
        if elem.tag == '{%s}mounts' % _record.NAMESPACE:
            records.update(_record.parse(ET.tostring(elem, encoding='unicode')))
    keys, foreign = set(), []
    tree = os.path.join(root, uuid)
    for fs in domain.findall('./devices/filesystem'):
        driver, source = fs.find('driver'), fs.find('source')
        if driver is None or driver.get('type') != 'virtiofs' or source is None or not source.get('dir'):
            continue
        path = os.path.normpath(source.get('dir'))
        if not path.startswith(root.rstrip('/') + '/'):
            continue
        if os.path.dirname(path) == tree and _KEY_RE.match(os.path.basename(path)):
            keys.add(os.path.basename(path))
        else:
            foreign.append(path)
    return uuid, records, keys, foreign


def pin_plan(records):
    """(pins, refused): ``pins`` is one dict (model, key, entry, volume, source_path, read_only, mount_root) per
    recorded model of a shared device, ``refused`` one (model, why) per such record that names no safe path."""
    pins, refused = [], []
    for model in sorted(records):
        rec = records[model]
        if not rec.get('device') or _record.is_detached(rec):
            continue    # a model with a virtiofs device of its own (served from the volume mount itself), or detached
        key = _export.key_of_tag(rec['device'])
        source_path = (rec.get('source_path') or '').strip('/')
        why = None
        if key is None or not _KEY_RE.match(key):
            why = 'device %r is not one of the shared devices' % rec['device']
        elif (key.split('-', 1)[0] == 'ro') != bool(rec.get('read_only', True)):
            why = 'read_only=%s does not match device %s' % (rec.get('read_only'), rec['device'])
        elif not rec.get('tag') or not _NAME_RE.match(rec['tag']):
            why = 'tag %r is not a name' % rec.get('tag')
        elif not rec.get('volume') or not _NAME_RE.match(rec['volume']):
            why = 'volume %r is not a name' % rec.get('volume')
        elif not source_path or any(p in ('', '.', '..') for p in source_path.split('/')):
            why = 'source_path %r is not a path below the volume root' % rec.get('source_path')
        elif rec.get('mount_root') and not os.path.isabs(rec['mount_root']):
            why = 'mount_root %r is not an absolute path' % rec['mount_root']
        if why:
            refused.append((model, why))
            continue
        pins.append({'model': model, 'key': key, 'entry': rec['tag'], 'volume': rec['volume'],
                     'volume_uuid': rec.get('volume_uuid'),
                     'source_path': source_path, 'read_only': bool(rec.get('read_only', True)),
                     'point': _juicefs.mountpoint(rec['volume'], rec.get('read_only', True),
                                                  rec.get('mount_root') or None)})
    return pins, refused


def volume_state(mounts, point, volume):
    """``mounted`` (the volume's JuiceFS mount is the visible mount there), ``absent`` or ``foreign``; whether it
    answers is asked separately (``Host.answering``)."""
    here = visible_at(mounts, point)
    if here is None:
        return 'absent'
    if here['fstype'] != _juicefs.FSTYPE or here['source'] != 'JuiceFS:%s' % volume:
        return 'foreign'
    return 'mounted'


# --- the host --------------------------------------------------------------------------------------

class Host:
    """What the hook does to the host: the mount table, statfs and _export's binds. Unit tests replace it."""

    def __init__(self, root=None):
        self.root = root or _export.DEFAULT_ROOT

    @staticmethod
    def mounts():
        return _export.host_mounts()

    @staticmethod
    def answering(points, timeout):
        """The points whose statfs answers within ``timeout`` seconds, all asked at once (a hung FUSE daemon
        keeps only its own thread)."""
        answers = {}

        def probe(point):
            try:
                os.statvfs(point)
                answers[point] = True
            except OSError:
                answers[point] = False

        workers = []
        for point in points:
            worker = threading.Thread(target=probe, args=(point,))
            worker.daemon = True
            worker.start()
            workers.append(worker)
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        return set(p for p, ok in answers.items() if ok)

    @staticmethod
    def identity(point, timeout):
        """(name, UUID) of the volume mounted at point (it answers statfs), or None."""
        return _juicefs.mounted_identity(point, timeout)

    def prepare_view(self, uuid, key, mounts):
        _export.prepare_view(uuid, key, self.root, mounts)

    def bound(self, uuid):
        return sorted(_export.bound_entries(_export.host_mounts(), uuid, self.root))

    def pin(self, uuid, key, entry, point, source_path, read_only):
        _export.pin(uuid, key, entry, point, source_path, read_only, self.root)

    def leave_empty(self, uuid, key, entry):
        """Nothing bound at the entry, and the entry an empty directory (the guest's fstab finds it)."""
        _export.unbind(_export.entry_path(uuid, key, entry, self.root))
        try:
            os.makedirs(os.path.join(_export.stage_dir(uuid, key, self.root), entry), mode=0o755)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise

    def unbind(self, uuid, key, entry):
        _export.unbind(_export.entry_path(uuid, key, entry, self.root))

    def release(self, uuid):
        _export.release(uuid, self.root)


# --- the operations --------------------------------------------------------------------------------

def _why(exc):
    return str(exc) or type(exc).__name__


def prepare(host, xml_text, log, statfs_timeout=STATFS_TIMEOUT):
    """Views for every device and record, then the tree holds exactly the recorded models that can be pinned."""
    uuid, records, keys, foreign = parse_domain(xml_text, host.root)
    pins, refused = pin_plan(records)
    for path in foreign:
        log('device source %s is in the export tree but not a view of this VM: left as it is' % path)
    views = sorted(keys | set(p['key'] for p in pins))
    mounts = host.mounts()
    for key in views:
        try:
            host.prepare_view(uuid, key, mounts)
        except Exception as exc:  # pylint: disable=broad-except
            log('view %s cannot be made: %s' % (_export.view_dir(uuid, key, host.root), _why(exc)))
    try:
        bound = host.bound(uuid)
    except Exception as exc:  # pylint: disable=broad-except
        bound = []
        log('what is bound in the export tree cannot be read: %s' % _why(exc))
    for key, entry in bound:
        try:
            host.unbind(uuid, key, entry)
        except Exception as exc:  # pylint: disable=broad-except
            log('%s/%s: what is bound there cannot be unbound: %s' % (key, entry, _why(exc)))
    for model, why in refused:
        log('model %s left out: its record is refused: %s' % (model, why))
    states = dict((p['point'], volume_state(mounts, p['point'], p['volume'])) for p in pins)
    answering = host.answering(sorted(p for p, s in states.items() if s == 'mounted'), statfs_timeout)
    identities = {}
    pinned = 0
    for pin in pins:
        state = states[pin['point']]
        if state == 'mounted' and pin['point'] not in answering:
            state = 'dead'
        if state == 'mounted' and pin['volume_uuid']:
            if pin['point'] not in identities:
                identities[pin['point']] = host.identity(pin['point'], statfs_timeout)
            found = identities[pin['point']]
            if found is None or found[1] != pin['volume_uuid']:
                state = 'another'
                pin['found'] = found[1] if found else 'unknown'
        why = {'absent': 'volume %(volume)s is not mounted at %(point)s',
               'foreign': 'what is mounted at %(point)s is not volume %(volume)s',
               'another': 'the volume %(volume)s mounted at %(point)s is UUID %(found)s, not the recorded %(volume_uuid)s',
               'dead': 'volume %(volume)s at %(point)s does not answer'}.get(state, '') % pin
        if not why:
            try:
                host.pin(uuid, pin['key'], pin['entry'], pin['point'], pin['source_path'], pin['read_only'])
                pinned += 1
                log('model %(model)s pinned: %(point)s/%(source_path)s at %(key)s/%(entry)s' % pin)
                continue
            except Exception as exc:  # pylint: disable=broad-except
                why = _why(exc)
        log('model %s left out (%s/%s is empty): %s' % (pin['model'], pin['key'], pin['entry'], why))
        try:
            host.leave_empty(uuid, pin['key'], pin['entry'])
        except Exception as exc:  # pylint: disable=broad-except
            log('model %s: %s/%s cannot be emptied: %s' % (pin['model'], pin['key'], pin['entry'], _why(exc)))
    log('%d of %d models pinned, views %s' % (pinned, len(pins) + len(refused), ', '.join(views) or 'none'))


def release(host, xml_text, log):
    uuid = parse_domain(xml_text, host.root)[0]
    bound = host.bound(uuid)
    host.release(uuid)
    log('%d models unbound' % len(bound))


ACTIONS = {PREPARE: prepare, RELEASE: release}


# --- the entry point -------------------------------------------------------------------------------

class Log:
    """Appends one line per event; a log that cannot be written is not an error of the hook."""

    def __init__(self, path, prefix):
        self.path = path
        self.prefix = prefix
        self.fd = None

    def __call__(self, message):
        line = '%s %s: %s' % (time.strftime('%Y-%m-%dT%H:%M:%S%z'), self.prefix, message)
        line = ''.join(c if c.isprintable() else ' ' for c in line) + '\n'
        try:
            if self.fd is None:
                directory = os.path.dirname(self.path)
                if not os.path.isdir(directory):
                    os.makedirs(directory, mode=0o700)
                self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                                  | getattr(os, 'O_CLOEXEC', 0), 0o600)
            os.write(self.fd, line.encode('utf-8', 'replace'))
        except (OSError, ValueError):
            pass

    def close(self):
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None


def main(argv, stdin, host=None, log_path=LOG_PATH, deadline=DEADLINE):
    """Run the hook for libvirt's ``argv`` (``[script, domain, operation, sub-operation, extra]``) and the domain
    XML on ``stdin``. Returns 0, always."""
    log = None
    try:
        args = (list(argv[1:]) + ['-'] * 3)[:3]
        action = ACTIONS.get(OPERATIONS.get((args[1], args[2])))
        if action is None:
            return 0
        log = Log(log_path, '%s %s %s' % (args[0], args[1], args[2]))
        outcome = []

        def work():
            try:
                data = getattr(stdin, 'buffer', stdin).read()
                action(host or Host(), data, log)
                outcome.append(None)
            except Exception as exc:  # pylint: disable=broad-except
                outcome.append(exc)

        worker = threading.Thread(target=work)
        worker.daemon = True
        started = time.monotonic()
        worker.start()
        worker.join(deadline)
        if not outcome:
            # The worker may still write: the log stays open until the process exits.
            log('gave up after %.1f s (left as it was then)' % (time.monotonic() - started))
            return 0
        if outcome[0] is not None:
            log('failed: %s' % _why(outcome[0]))
        log.close()
    except Exception as exc:  # pylint: disable=broad-except
        if log is not None:
            log('failed: %s' % _why(exc))
    return 0
