# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Validation and normalization of names and paths, and virtiofs tag derivation.

Everything here is pure: no I/O, so every rule can be unit tested and runs before any change.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import hashlib
import re
from urllib.parse import quote, unquote

from ansible_collections.aimodel.kvm.plugins.module_utils import _export
from ansible_collections.aimodel.kvm.plugins.module_utils._errors import AimodelError

TAG_PREFIX = 'aim-'
# A tag names the model's directory in the VM's export tree (and was the virtiofs tag of the model's own device in
# an earlier release, for which QEMU allowed 36 bytes).
TAG_MAX_BYTES = 64
# 64 bits of the name's sha256: two names that share a tag are not found by trying (32 bits were, in a second).
_TAG_HASH_LEN = 16

_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]*$')
MODEL_MAX_LEN = 128
VOLUME_MAX_LEN = 63
PATH_MAX_LEN = 1024
COMPONENT_MAX_LEN = 255

# Guest paths. A system tree is refused together with everything below it: a model mounted there hides or
# replaces what the guest's system reads (its configuration, programs, libraries, kernel interfaces, the
# collection's own device mounts below /run/aimodel). /lib, /lib64, /libx32, ... are system trees too.
SYSTEM_TREES = ('/etc', '/root', '/usr', '/boot', '/efi', '/bin', '/sbin', '/proc', '/sys', '/dev', '/run')
_LIB_TREE_RE = re.compile(r'^(/lib[^/]*)(/|$)')
# /var is a system tree but for these data places, where models may be mounted below.
VAR_DATA_DIRS = ('/var/lib/models', '/var/lib/aimodel')
# Directories that only their own subtrees may hold models: mounting over one of them hides everything in it.
SYSTEM_DIRS = frozenset(('/', '/tmp', '/home', '/opt', '/srv', '/mnt', '/media') + VAR_DATA_DIRS)
# Where model mounts go (for messages).
_MOUNT_PLACES = 'below /mnt, /srv, /opt, /home, /media, /tmp, %s, or a directory of its own such as /models' \
    % ', '.join(VAR_DATA_DIRS)

# libvirt URIs of the hypervisor the module runs on (the QEMU driver's system or session daemon over its local
# socket). Any other URI may make libvirt run a program (ssh, or the command= of the ext transport), reach
# another host, or talk to another driver or socket.
LOCAL_URIS = ('qemu:///system', 'qemu:///session', 'qemu+unix:///system', 'qemu+unix:///session')
URI_RE = re.compile(r'^([A-Za-z][A-Za-z0-9.-]*)(?:\+([A-Za-z0-9.-]*))?://([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$')
_REMOTE_TRANSPORTS = {
    'ssh': 'runs ssh to reach another host',
    'libssh': 'opens an SSH session to another host',
    'libssh2': 'opens an SSH session to another host',
    'ext': 'runs an external program (its command= parameter)',
    'tcp': 'connects over the network (unencrypted)',
    'tls': 'connects over the network',
}

# Schemes of the metadata engines the client understands.
META_SCHEMES = frozenset([
    'redis', 'rediss', 'unix', 'mysql', 'postgres', 'tikv', 'sqlite3', 'badger', 'etcd', 'fdb',
])
FILE_SCHEMES = frozenset(['sqlite3', 'badger'])

# The longest timeout an option may set: a day.
MAX_SECONDS = 86400

# The guest's readahead of a mount is a sysfs value in KiB; beyond 64 MiB it only costs guest memory.
MAX_READ_AHEAD_KB = 65536


class SpecError(AimodelError, ValueError):
    """A bad input; ``field`` names the option that holds it, and the message starts with it."""

    def __init__(self, field, message):
        super(SpecError, self).__init__('%s: %s' % (field, message), field)


def _printable(value):
    """Quote a user value for an error message without echoing control characters raw."""
    return repr(value)


def check_text(field, value):
    if not isinstance(value, str):
        raise SpecError(field, 'must be a string, got %s' % type(value).__name__)
    if value == '':
        raise SpecError(field, 'must not be empty')
    for char in value:
        if ord(char) < 32 or ord(char) == 127:
            raise SpecError(field, 'must not contain NUL, newline or other control characters: %s' % _printable(value))


def validate_name(field, value, max_len):
    """A safe identifier: letters, digits, '.', '_', '-', starting with a letter or digit."""
    check_text(field, value)
    if len(value) > max_len:
        raise SpecError(field, 'must be at most %d characters, got %d' % (max_len, len(value)))
    if not _NAME_RE.match(value):
        raise SpecError(
            field,
            'must start with a letter or digit and contain only letters, digits, ".", "_" and "-": %s' % _printable(value))
    if value.endswith('.'):
        raise SpecError(field, 'must not end with ".": %s' % _printable(value))
    return value


def validate_model(value):
    return validate_name('model', value, MODEL_MAX_LEN)


def validate_volume_name(value):
    return validate_name('volume.name', value, VOLUME_MAX_LEN)


# Guest paths: portable file name characters only. No shell or glob metacharacter, no quote, no
# look-alike letter from another script, nothing fstab would need to escape.
_MOUNT_PATH_RE = re.compile(r'^[A-Za-z0-9._@+,=:/-]+$')


def _components(field, value):
    parts = []
    for part in value.split('/'):
        if part in ('', '.'):
            continue
        if part == '..':
            raise SpecError(field, 'must not contain "..": %s' % _printable(value))
        if part.endswith('.'):
            raise SpecError(field, 'must not have a path component ending with ".": %s' % _printable(value))
        if len(part.encode('utf-8')) > COMPONENT_MAX_LEN:
            raise SpecError(field, 'has a path component longer than %d bytes' % COMPONENT_MAX_LEN)
        parts.append(part)
    return parts


def normalize_mount_path(value, field='mount_path'):
    """Return the canonical absolute guest path, or raise SpecError.

    ``/mnt/models/./a``, ``/mnt/models//a/`` and ``/mnt/models/a`` all give ``/mnt/models/a``;
    the normalized value is what is compared and stored.
    """
    check_text(field, value)
    if len(value.encode('utf-8')) > PATH_MAX_LEN:
        raise SpecError(field, 'must be at most %d bytes' % PATH_MAX_LEN)
    if not value.startswith('/'):
        raise SpecError(field, 'must be an absolute path: %s' % _printable(value))
    if any(char.isspace() for char in value):
        raise SpecError(field, 'must not contain white space: %s' % _printable(value))
    if '\\' in value:
        raise SpecError(field, 'must not contain a backslash: %s' % _printable(value))
    if not _MOUNT_PATH_RE.match(value):
        raise SpecError(field, 'may contain only letters a-z and A-Z, digits and . _ - + @ , = : / (no shell '
                               'metacharacters, quotes or non-ASCII look-alikes): %s' % _printable(value))
    normalized = '/' + '/'.join(_components(field, value))
    if normalized in SYSTEM_DIRS:
        raise SpecError(field, 'must not be the directory %s itself, a mount there hides all it holds (mount models %s)'
                        % (normalized, _MOUNT_PLACES))
    tree = _system_tree(normalized)
    if tree is not None:
        if tree == normalized:
            raise SpecError(field, 'must not be the system directory %s (mount models %s)' % (tree, _MOUNT_PLACES))
        raise SpecError(field, 'must not be in the system tree %s: %s (mount models %s)' % (tree, normalized, _MOUNT_PLACES))
    return normalized


def _system_tree(path):
    """The system tree that holds this normalized guest path (the path itself, or a directory above it), or None."""
    for tree in SYSTEM_TREES:
        if path == tree or path.startswith(tree + '/'):
            return tree
    lib = _LIB_TREE_RE.match(path)
    if lib:
        return lib.group(1)
    if path == '/var' or path.startswith('/var/'):
        if any(path.startswith(place + '/') for place in VAR_DATA_DIRS):
            return None
        return '/var'
    return None


def normalize_source_path(value, field='source_path'):
    """Return the model directory relative to the volume root (``models/x``), or raise SpecError.

    ``models/x`` and ``/models/x`` both mean that directory under the volume's root. The root itself
    is refused: it holds the client's control files, which must not reach a guest.
    """
    check_text(field, value)
    if len(value.encode('utf-8')) > PATH_MAX_LEN:
        raise SpecError(field, 'must be at most %d bytes' % PATH_MAX_LEN)
    parts = _components(field, value)
    if not parts:
        raise SpecError(field, 'must name a directory below the volume root, not the root itself: %s' % _printable(value))
    if parts[0].startswith('.'):
        raise SpecError(field, 'must not start with a hidden directory (the volume keeps control files there): %s' % _printable(value))
    return '/'.join(parts)


def normalize_host_path(value, field):
    """A path on the hypervisor (a directory or the client): absolute, without ``..``, returned normalized
    (``//`` and ``/./`` folded, no trailing ``/``), or raise SpecError. Whether others can change what it names is
    a question for the host (see ``_hostpath``)."""
    check_text(field, value)
    if len(value.encode('utf-8')) > PATH_MAX_LEN:
        raise SpecError(field, 'must be at most %d bytes' % PATH_MAX_LEN)
    if not value.startswith('/'):
        raise SpecError(field, 'must be an absolute path: %s' % _printable(value))
    parts = [part for part in value.split('/') if part not in ('', '.')]
    if '..' in parts:
        raise SpecError(field, 'must not contain "..": %s' % _printable(value))
    normalized = '/' + '/'.join(parts)
    if normalized == '/':
        raise SpecError(field, 'must not be the root directory /')
    for root in ('/proc', '/sys', '/dev'):
        if normalized == root or normalized.startswith(root + '/'):
            raise SpecError(field, 'must not be in the pseudo file system %s: %s' % (root, normalized))
    return normalized


def validate_uri(value, field='uri'):
    """The libvirt URI must name the local hypervisor (one of ``LOCAL_URIS``, exactly); else SpecError says why."""
    check_text(field, value)
    if value in LOCAL_URIS:
        return value
    raise SpecError(field, '%s %s; only the hypervisor the task runs on can be managed: use one of %s'
                    % (_printable(value), _uri_refusal(value), ', '.join(LOCAL_URIS)))


def _uri_refusal(value):
    """Why a URI that is not a local one is refused, in words."""
    match = URI_RE.match(value)
    if not match:
        return 'is not a libvirt URI (driver[+transport]:///system), and libvirt could resolve it as an alias'
    driver, transport, authority, path, query, fragment = match.groups()
    if driver != 'qemu':
        return 'names the driver %r, not qemu' % driver
    if transport is not None and transport != 'unix':
        return 'uses the transport %r, which %s' % (transport, _REMOTE_TRANSPORTS.get(transport, 'is not the local socket'))
    if authority:
        return 'names a host (%s): libvirt would connect to it over the network' % _printable(authority)
    if query:
        return 'has parameters (%s), which can choose the program, socket or daemon libvirt uses' % _printable(query)
    if fragment:
        return 'has a fragment (%s)' % _printable(fragment)
    return 'has the path %s, not /system or /session' % _printable(path or '')


def default_mount_path(model):
    return '/mnt/models/%s' % model


def derive_tag(model):
    """The tag of a model: deterministic, at most 64 bytes, unique per model.

    ``aim-<start of the model name>-<16 hex digits of its sha256>``: readable in the guest's mount
    table, and distinct names give distinct tags whatever their length. A model already recorded keeps the
    tag of its record (see ``_mounted.plan``).
    """
    digest = hashlib.sha256(model.encode('utf-8')).hexdigest()[:_TAG_HASH_LEN]
    room = TAG_MAX_BYTES - len(TAG_PREFIX) - 1 - _TAG_HASH_LEN
    slug = re.sub(r'[^a-z0-9._-]', '-', model.lower())[:room].rstrip('.-_')
    tag = '%s%s-%s' % (TAG_PREFIX, slug, digest) if slug else '%s%s' % (TAG_PREFIX, digest)
    return tag


def legacy_tag(model):
    """The tag an earlier release derived (8 hex digits, at most 36 bytes): the virtiofs tag of the model's own
    device, which a model without a record may still have."""
    digest = hashlib.sha256(model.encode('utf-8')).hexdigest()[:8]
    slug = re.sub(r'[^a-z0-9._-]', '-', model.lower())[:36 - len(TAG_PREFIX) - 1 - 8].rstrip('.-_')
    return '%s%s-%s' % (TAG_PREFIX, slug, digest) if slug else '%s%s' % (TAG_PREFIX, digest)


def is_our_tag(tag):
    return isinstance(tag, str) and tag.startswith(TAG_PREFIX)


def _split_meta_url(value, field):
    """(URL without password, password as written in the URL or None)."""
    check_text(field, value)
    match = re.match(r'^([a-z][a-z0-9+.-]*)://(.*)$', value, re.DOTALL)
    if not match:
        raise SpecError(field, 'must look like scheme://... (for example redis://host:6379/1 or sqlite3:///path/meta.db): %s'
                        % mask_meta_url(value))
    scheme, rest = match.group(1), match.group(2)
    if scheme not in META_SCHEMES:
        raise SpecError(field, 'unsupported scheme %r; expected one of %s' % (scheme, ', '.join(sorted(META_SCHEMES))))
    if not rest:
        raise SpecError(field, 'has nothing after %s://' % scheme)
    written = None
    # File-based engines have no credentials; a path may contain '@'.
    userinfo, sep, hostpart = ('', '', rest) if scheme in FILE_SCHEMES else rest.rpartition('@')
    if sep:
        user, colon, secret = userinfo.partition(':')
        if colon:
            written = secret
        rest = ('%s@%s' % (user, hostpart)) if user else hostpart
    if any(char.isspace() for char in rest):
        raise SpecError(field, 'must not contain white space: %s' % mask_meta_url(value))
    return '%s://%s' % (scheme, rest), (written or None)


# A '%' of a URL's password that does not start a %-escape: the password's meaning is unclear.
_BAD_ESCAPE_RE = re.compile(r'%(?![0-9A-Fa-f]{2})')


def _decode_password(field, written, value):
    if _BAD_ESCAPE_RE.search(written):
        raise SpecError(field, 'the password holds a "%%" that is not followed by two hex digits: write a "%%" of the '
                               'password as %%25, or give the password separately (meta_password): %s'
                        % mask_meta_url(value))
    try:
        return unquote(written, errors='strict')
    except UnicodeDecodeError:
        raise SpecError(field, 'the %%-encoded password is not UTF-8: %s' % mask_meta_url(value))


def split_meta_url(value, field='volume.meta_url'):
    """Split a metadata URL into (URL without password, password or None).

    For a network engine, what lies between ``://`` and the URL's last ``@`` is ``user:password`` (the user ends at
    the first ``:``): the password may hold ``:``, ``/`` and ``@`` as they are, and any character %-encoded
    (``%40`` is ``@``, a ``%`` of the password is ``%25``), as in any URL. The password returned is decoded: the
    client gets it as it is, through its environment, never on a command line. Raises SpecError with the password
    masked.
    """
    url, password, _forms = meta_connection(value, None, field)
    return url, password


def secret_forms(password, written=None):
    """Every form in which a password can show up in a text: as it is, %-encoded (every character but letters,
    digits and ``-._~``, or as Go's URL package writes a password) and as written in a URL; longest first, so that
    a scrub replaces a whole form before any shorter one inside it."""
    if not password:
        return ()
    forms = set([password, quote(password, safe=''), quote(password, safe="!$&'()*+,;=")])
    if written:
        forms.add(written)
    return tuple(sorted(forms, key=lambda form: (-len(form), form)))


def meta_connection(meta_url, meta_password=None, field='volume.meta_url', password_field='volume.meta_password'):
    """(URL without password, password or None, every form of the password to hide) of a metadata engine given by
    its URL and, optionally, a separate password (taken as it is). Raises SpecError, the password masked."""
    url, written = _split_meta_url(meta_url, field)
    url_password = _decode_password(field, written, meta_url) if written else None
    if url_password and meta_password and url_password != meta_password:
        raise SpecError(password_field, 'differs from the password inside %s; give it once' % field)
    password = url_password or meta_password or None
    if password is not None and not isinstance(password, str):
        raise SpecError(password_field, 'must be a string, got %s' % type(password).__name__)
    if password and '\x00' in password:
        raise SpecError(password_field if meta_password and not url_password else field,
                        'the password must not contain a NUL character (it cannot be passed to the client)')
    return url, password, secret_forms(password, written)


def url_secrets(value):
    """What may be a password inside a metadata URL, as written and %-decoded: for masking, even in a URL that
    does not parse (between the first ':' after '://' and the last '@')."""
    if not isinstance(value, str) or '@' not in value:
        return []
    rest = value.split('://', 1)[-1]
    userinfo = rest.rpartition('@')[0]
    secret = userinfo.partition(':')[2]
    if not secret:
        return []
    return sorted(secret_forms(unquote(secret), secret))


def mask_meta_url(value):
    """The URL with any password replaced by ****, for messages.

    As ``split_meta_url`` reads a URL: the password runs from the first ``:`` after ``://`` to the last ``@``, so a
    password holding ``:``, ``/`` or ``@`` is masked whole, raw or %-encoded. A value that is not a URL at all loses
    everything before its last ``@``.
    """
    if not isinstance(value, str):
        return '<not a string>'
    match = re.match(r'^([a-z][a-z0-9+.-]*)://(.*)$', value, re.DOTALL)
    if not match:
        _userinfo, sep, hostpart = value.rpartition('@')
        return '****@%s' % hostpart if sep else value
    if match.group(1) in FILE_SCHEMES or '@' not in match.group(2):
        return value
    userinfo, _sep, hostpart = match.group(2).rpartition('@')
    user, colon, _secret = userinfo.partition(':')
    return '%s://%s%s@%s' % (match.group(1), user, ':****' if colon else '', hostpart)


# The volume's options that name a path on the hypervisor: the module's root runs the client, mounts and caches
# there, so each is normalized here and checked on the host (``_hostpath.check_trusted``) before anything is done.
HOST_PATH_OPTIONS = ('mount_root', 'cache_dir', 'client_path')


def check_seconds(field, value):
    """A timeout option: whole seconds from 1 to a day."""
    if value is None or isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SECONDS:
        raise SpecError(field, 'must be between 1 and %d seconds, got %r' % (MAX_SECONDS, value))
    return value


def desired_from_params(params):
    """Validate and normalize vm_model_mount's arguments: (the desired record, the volume's connection settings;
    None with state=absent). No I/O. Raises SpecError."""
    model = validate_model(params['model'])
    validate_uri(params['uri'])
    for field in ('lock_timeout', 'agent_timeout', 'device_timeout', 'guest_timeout'):
        check_seconds(field, params[field])
    if params['state'] in ('absent', 'detached'):
        return {'model': model}, None
    if params['source_path'] is None:
        raise SpecError('source_path', 'is required with state=mounted')
    volume = params['volume']
    if not volume:
        raise SpecError('volume', 'is required with state=mounted')
    if params['read_ahead_kb'] is None or not 0 <= params['read_ahead_kb'] <= MAX_READ_AHEAD_KB:
        raise SpecError('read_ahead_kb', 'must be between 0 (keep the guest kernel default) and %d KiB, got %r'
                        % (MAX_READ_AHEAD_KB, params['read_ahead_kb']))
    name = validate_volume_name(volume['name'])
    if not volume.get('meta_url'):
        raise SpecError('volume.meta_url', 'is required with state=mounted (or set AIMODEL_META_URL)')
    meta_url, password, secrets = meta_connection(volume['meta_url'], volume.get('meta_password'))
    if volume.get('cache_size') is not None and volume['cache_size'] < 0:
        raise SpecError('volume.cache_size', 'must not be negative')
    host_paths = dict((key, normalize_host_path(volume[key], 'volume.' + key) if volume.get(key) is not None else None)
                      for key in HOST_PATH_OPTIONS)
    mount_path = normalize_mount_path(params['mount_path'] if params['mount_path'] is not None
                                      else default_mount_path(model))
    desired = {
        'model': model,
        'volume': name,
        # Filled in by the plan from the metadata engine (or a record that already proved it).
        'volume_uuid': None,
        'meta_url': meta_url,
        'source_path': normalize_source_path(params['source_path']),
        'mount_path': mount_path,
        'tag': derive_tag(model),
        'device': _export.device_tag(_export.device_key(params['read_only'], params['cache'])),
        'read_only': params['read_only'],
        'persist': params['persist'],
        'guest_mount': params['guest_mount'],
        'cache': params['cache'],
        'read_ahead_kb': params['read_ahead_kb'],
        'mount_root': host_paths['mount_root'],
    }
    connection = {
        'meta_url': meta_url,
        'password': password,
        'secrets': secrets,
        'mount_root': host_paths['mount_root'],
        'cache_dir': host_paths['cache_dir'],
        'cache_size': volume.get('cache_size'),
        'client_path': host_paths['client_path'],
    }
    return desired, connection
