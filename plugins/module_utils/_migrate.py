# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Moving a VM to another hypervisor: the destination's URIs and whether virtiofs can migrate natively.

A migration needs two libvirts. The destination is named by a URI of one narrow shape only,
``qemu+ssh://[user@]host[:port]/system`` with no query (a query can choose the program, socket or
daemon libvirt runs), and the migration data goes to ``tcp://<address>[:port]``. The local URIs of
``_spec.validate_uri`` stay the only ones the mount modules accept.

A domain with a virtiofs device migrates natively only when both hypervisors have a libvirt that allows
it (``NATIVE_LIBVIRT``), a QEMU whose vhost-user-fs device migrates the back end's state
(``NATIVE_QEMU``) and a virtiofsd that can hand its state over (``NATIVE_VIRTIOFSD``, with
``--migration-mode``; its vhost-user descriptor lists the feature ``migrate-precopy``). virtiofsd never
moves file data: both hypervisors must serve the same volume at the same path. Otherwise the models are
taken out, the VM moves, and the models are mounted again from the record.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import json
import os
import re

from ansible_collections.aimodel.kvm.plugins.module_utils._spec import SpecError, check_text

# libvirt allows migrating a virtiofs device whose daemon advertises migrate-precopy from 10.6.0;
# QEMU's vhost-user-fs migrates the back end's internal state from 8.2; virtiofsd has --migration-mode from 1.11.
NATIVE_LIBVIRT = (10, 6, 0)
NATIVE_QEMU = (8, 2, 0)
NATIVE_VIRTIOFSD = (1, 11, 0)

_HOST_NAME = r'[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*'
_IPV6 = r'\[[0-9A-Fa-f:.]{2,45}\]'
_HOST = r'(?:%s|%s)' % (_HOST_NAME, _IPV6)
_PORT = r'(?::([0-9]{1,5}))?'
DEST_URI_RE = re.compile(r'^qemu\+ssh://(?:([a-z_][a-z0-9_-]{0,31})@)?(%s)%s/system$' % (_HOST, _PORT))
DATA_URI_RE = re.compile(r'^tcp://(%s)%s$' % (_HOST, _PORT))
_VERSION_RE = re.compile(r'([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?')
# Where QEMU and libvirt find vhost-user back ends (the first file of a name wins, /etc before /usr/share).
DESCRIPTOR_DIRS = ('/etc/qemu/vhost-user', '/usr/share/qemu/vhost-user')
# A descriptor is a few hundred bytes; a larger file is not one.
DESCRIPTOR_MAX = 65536


def _port_ok(port):
    return port is None or 0 < int(port) < 65536


def validate_destination_uri(value, field='destination_uri'):
    """``qemu+ssh://[user@]host[:port]/system``, nothing else: no other driver or transport, no query, no fragment."""
    check_text(field, value)
    match = DEST_URI_RE.match(value)
    if not match or not _port_ok(match.group(3)):
        raise SpecError(field, '%r is not a destination libvirt URI of the form qemu+ssh://[user@]host[:port]/system '
                               '(no parameters)' % value)
    return value


def validate_data_uri(value, field='migrate_uri'):
    """``tcp://host[:port]``: where the source's QEMU sends the migration stream."""
    check_text(field, value)
    match = DATA_URI_RE.match(value)
    if not match or not _port_ok(match.group(2)):
        raise SpecError(field, '%r is not a migration data URI of the form tcp://host[:port]' % value)
    return value


def data_uri_host(value, field='migrate_uri'):
    """The host of a valid migration data URI, lower-case (an IPv6 address with its brackets)."""
    return DATA_URI_RE.match(validate_data_uri(value, field)).group(1).lower()


def _bracketed(address):
    return '[%s]' % address if ':' in address and not address.startswith('[') else address


def destination_uri(host, user=None, port=None):
    """The destination URI for an inventory host name (or address; an IPv6 address is bracketed), validated."""
    host = _bracketed(host)
    authority = '%s@%s' % (user, host) if user else host
    if port:
        authority = '%s:%s' % (authority, port)
    return validate_destination_uri('qemu+ssh://%s/system' % authority)


def data_uri(address, port=None):
    """The migration data URI for the destination's address (an IPv6 address is bracketed), validated."""
    return validate_data_uri('tcp://%s%s' % (_bracketed(address), ':%s' % port if port else ''))


def parse_version(value):
    """A version as a tuple of three numbers: 9000000 (libvirt's integer), '8.2.1', 'virtiofsd 1.11.1',
    'QEMU emulator version 7.2.15 (Debian ...)'; None when there is none."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return (value // 1000000, value // 1000 % 1000, value % 1000)
    match = _VERSION_RE.search(str(value))
    if not match:
        return None
    return tuple(int(part or 0) for part in match.groups())


def c_virtiofsd(version_text):
    """Whether ``virtiofsd --version`` is that of QEMU's own C virtiofsd (removed from QEMU 8.0, versioned with
    QEMU: "virtiofsd version 7.2.22 (Debian ...)"), which cannot migrate whatever its version number says; the
    Rust virtiofsd prints "virtiofsd 1.11.1"."""
    text = version_text or ''
    return 'virtiofsd version ' in text or 'QEMU Project' in text or 'Fabrice Bellard' in text


def native_support(libvirt=None, qemu=None, virtiofsd=None, virtiofsd_help='', precopy=None):
    """Whether one hypervisor can migrate a virtiofs device natively, and why not.

    ``libvirt``, ``qemu``, ``virtiofsd``: versions (any form ``parse_version`` reads); ``virtiofsd_help``:
    the output of ``virtiofsd --help`` (it must offer ``--migration-mode``); ``precopy``: whether the
    vhost-user descriptor of virtiofsd lists ``migrate-precopy`` (None: not known, not required).
    Returns ``(bool, reasons)``, the reasons in words, empty when it can.
    """
    reasons = []
    for name, value, least in (('libvirt', libvirt, NATIVE_LIBVIRT), ('QEMU', qemu, NATIVE_QEMU),
                               ('virtiofsd', virtiofsd, NATIVE_VIRTIOFSD)):
        if name == 'virtiofsd' and isinstance(value, str) and c_virtiofsd(value):
            reasons.append("virtiofsd is QEMU's C virtiofsd (%s), which cannot migrate" % value.splitlines()[0].strip())
            continue
        found = parse_version(value)
        if found is None:
            reasons.append('%s version unknown' % name)
        elif found < least:
            reasons.append('%s %s is older than %s' % (name, '.'.join(map(str, found)), '.'.join(map(str, least))))
    if '--migration-mode' not in (virtiofsd_help or ''):
        reasons.append('virtiofsd has no --migration-mode')
    if precopy is False:
        reasons.append("virtiofsd's vhost-user descriptor does not list migrate-precopy")
    return not reasons, reasons


def descriptor_has_precopy(descriptor):
    """Whether a parsed vhost-user JSON descriptor (e.g. /usr/share/qemu/vhost-user/50-virtiofsd.json) is a
    vhost-user-fs back end that lists the feature migrate-precopy."""
    if not isinstance(descriptor, dict) or descriptor.get('type') != 'fs':
        return False
    features = descriptor.get('features')
    return isinstance(features, list) and 'migrate-precopy' in features


def migration_mode(source, destination):
    """``native`` when both sides (the results of ``native_support``) can, else ``detach``, with the reasons
    prefixed by the side."""
    reasons = ['source: %s' % r for r in source[1]] + ['destination: %s' % r for r in destination[1]]
    return ('native' if source[0] and destination[0] else 'detach'), reasons


def fs_descriptor(listdir, read_file, dirs=None):
    """The vhost-user-fs descriptor libvirt uses (the first by file name, a file in /etc/qemu/vhost-user hiding
    the one of the same name in /usr/share): (path, parsed) or (None, None). ``listdir(dir)`` lists a directory
    (an OSError when it is not there), ``read_file(path, limit)`` reads at most limit bytes."""
    chosen = {}
    for directory in dirs or DESCRIPTOR_DIRS:
        try:
            names = listdir(directory)
        except OSError:
            continue
        for name in names:
            if name.endswith('.json') and name not in chosen:
                chosen[name] = os.path.join(directory, name)
    for name in sorted(chosen):
        try:
            data = read_file(chosen[name], DESCRIPTOR_MAX + 1)
        except OSError:
            continue
        if len(data) > DESCRIPTOR_MAX:
            continue
        try:
            parsed = json.loads(data)
        except ValueError:
            continue
        if isinstance(parsed, dict) and parsed.get('type') == 'fs' and isinstance(parsed.get('binary'), str):
            return chosen[name], parsed
    return None, None


def host_support(versions, listdir, read_file, run):
    """What this hypervisor offers for a native migration of virtiofs: a dict with ``native`` (bool),
    ``reasons``, the versions found (``libvirt``, ``qemu``, ``virtiofsd``), the descriptor and binary of
    virtiofsd and whether the descriptor lists migrate-precopy. ``versions()`` gives (libvirt, QEMU) as
    libvirt's integers; ``run(argv)`` gives (rc, stdout, stderr)."""
    libvirt_v, qemu_v = versions()
    path, descriptor = fs_descriptor(listdir, read_file)
    binary = descriptor['binary'] if descriptor else None
    version_text, help_text = None, ''
    if binary:
        rc, out, err = run([binary, '--version'])
        version_text = (out or err or '').strip()[:200] if rc == 0 else None
        rc, out, err = run([binary, '--help'])
        help_text = (out or '') + (err or '') if rc == 0 else ''
    precopy = descriptor_has_precopy(descriptor) if descriptor else False
    native, reasons = native_support(libvirt=libvirt_v, qemu=qemu_v, virtiofsd=version_text,
                                     virtiofsd_help=help_text, precopy=precopy)
    if descriptor is None:
        reasons.insert(0, 'no vhost-user-fs descriptor in %s' % ' or '.join(DESCRIPTOR_DIRS))

    def shown(value):
        found = parse_version(value)
        return '.'.join(map(str, found)) if found else None
    return dict(native=native and descriptor is not None, reasons=reasons, libvirt=shown(libvirt_v), qemu=shown(qemu_v),
                virtiofsd=(version_text or '').splitlines()[0] if version_text else None, descriptor=path,
                virtiofsd_binary=binary, precopy=precopy)
