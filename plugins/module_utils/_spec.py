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

# Mounting over these directories themselves would break the guest.
SYSTEM_DIRS = frozenset([
    '/', '/etc', '/proc', '/sys', '/dev', '/boot', '/usr', '/bin', '/sbin', '/var', '/run', '/root',
    '/tmp', '/home', '/opt', '/srv', '/mnt', '/media',
])
# Pseudo file systems: nothing below them can hold a model mount.
PSEUDO_FS_ROOTS = ('/proc', '/sys', '/dev')

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


def _check_text(field, value):
    if not isinstance(value, str):
        raise SpecError(field, 'must be a string, got %s' % type(value).__name__)
    if value == '':
        raise SpecError(field, 'must not be empty')
    for char in value:
        if ord(char) < 32 or ord(char) == 127:
            raise SpecError(field, 'must not contain NUL, newline or other control characters: %s' % _printable(value))


def validate_name(field, value, max_len):
    """A safe identifier: letters, digits, '.', '_', '-', starting with a letter or digit."""
    _check_text(field, value)
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
    _check_text(field, value)
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
    if normalized in SYSTEM_DIRS or re.match(r'^/lib[^/]*$', normalized):
        raise SpecError(field, 'must not be the system directory %s' % normalized)
    for root in PSEUDO_FS_ROOTS:
        if normalized.startswith(root + '/'):
            raise SpecError(field, 'must not be below %s: %s' % (root, normalized))
    return normalized


def normalize_source_path(value, field='source_path'):
    """Return the model directory relative to the volume root (``models/x``), or raise SpecError.

    ``models/x`` and ``/models/x`` both mean that directory under the volume's root. The root itself
    is refused: it holds the client's control files, which must not reach a guest.
    """
    _check_text(field, value)
    if len(value.encode('utf-8')) > PATH_MAX_LEN:
        raise SpecError(field, 'must be at most %d bytes' % PATH_MAX_LEN)
    parts = _components(field, value)
    if not parts:
        raise SpecError(field, 'must name a directory below the volume root, not the root itself: %s' % _printable(value))
    if parts[0].startswith('.'):
        raise SpecError(field, 'must not start with a hidden directory (the volume keeps control files there): %s' % _printable(value))
    return '/'.join(parts)


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


def split_meta_url(value, field='volume.meta_url'):
    """Split a metadata URL into (url without password, password or None).

    The password must never reach a command line: the caller passes it through the environment.
    Raises SpecError with the password masked.
    """
    _check_text(field, value)
    match = re.match(r'^([a-z][a-z0-9+.-]*)://(.*)$', value, re.DOTALL)
    if not match:
        raise SpecError(field, 'must look like scheme://... (for example redis://host:6379/1 or sqlite3:///path/meta.db): %s'
                        % mask_meta_url(value))
    scheme, rest = match.group(1), match.group(2)
    if scheme not in META_SCHEMES:
        raise SpecError(field, 'unsupported scheme %r; expected one of %s' % (scheme, ', '.join(sorted(META_SCHEMES))))
    if not rest:
        raise SpecError(field, 'has nothing after %s://' % scheme)
    password = None
    # File-based engines have no credentials; a path may contain '@'.
    userinfo, sep, hostpart = ('', '', rest) if scheme in FILE_SCHEMES else rest.rpartition('@')
    if sep:
        user, colon, secret = userinfo.partition(':')
        if colon:
            password = secret
        rest = ('%s@%s' % (user, hostpart)) if user else hostpart
    if any(char.isspace() for char in rest):
        raise SpecError(field, 'must not contain white space: %s' % mask_meta_url(value))
    return '%s://%s' % (scheme, rest), (password or None)


def mask_meta_url(value):
    """The URL with any password replaced by ****, for messages."""
    if not isinstance(value, str):
        return '<not a string>'
    match = re.match(r'^([a-z][a-z0-9+.-]*)://(.*)$', value, re.DOTALL)
    if not match:
        # Not a URL at all: hide anything that looks like user:password@.
        return re.sub(r':[^:@/]*@', ':****@', value)
    if match.group(1) in FILE_SCHEMES or '@' not in match.group(2):
        return value
    userinfo, _sep, hostpart = match.group(2).rpartition('@')
    user, colon, _secret = userinfo.partition(':')
    return '%s://%s%s@%s' % (match.group(1), user, ':****' if colon else '', hostpart)


def check_seconds(field, value):
    """A timeout option: whole seconds from 1 to a day."""
    if value is None or isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SECONDS:
        raise SpecError(field, 'must be between 1 and %d seconds, got %r' % (MAX_SECONDS, value))
    return value


def desired_from_params(params):
    """Validate and normalize vm_model_mount's arguments: (the desired record, the volume's connection settings;
    None with state=absent). No I/O. Raises SpecError."""
    model = validate_model(params['model'])
    for field in ('lock_timeout', 'agent_timeout', 'device_timeout', 'guest_timeout'):
        check_seconds(field, params[field])
    if params['state'] == 'absent':
        return {'model': model}, None
    if params['source_path'] is None:
        raise SpecError('source_path', 'is required with state=mounted')
    volume = params['volume']
    if not volume:
        raise SpecError('volume', 'is required with state=mounted')
    if params['cache'] == 'never':
        raise SpecError('cache', 'never is refused: model loaders mmap the weights and mmap fails on a '
                                 'virtiofs mount without cache; use auto or always')
    if params['read_ahead_kb'] is None or not 0 <= params['read_ahead_kb'] <= MAX_READ_AHEAD_KB:
        raise SpecError('read_ahead_kb', 'must be between 0 (keep the guest kernel default) and %d KiB, got %r'
                        % (MAX_READ_AHEAD_KB, params['read_ahead_kb']))
    name = validate_volume_name(volume['name'])
    if not volume.get('meta_url'):
        raise SpecError('volume.meta_url', 'is required with state=mounted (or set AIMODEL_META_URL)')
    meta_url, url_password = split_meta_url(volume['meta_url'])
    if url_password and volume.get('meta_password') and url_password != volume['meta_password']:
        raise SpecError('volume.meta_password', 'differs from the password inside volume.meta_url; give it once')
    if volume.get('cache_size') is not None and volume['cache_size'] < 0:
        raise SpecError('volume.cache_size', 'must not be negative')
    mount_path = normalize_mount_path(params['mount_path'] if params['mount_path'] is not None
                                      else default_mount_path(model))
    desired = {
        'model': model,
        'volume': name,
        'source_path': normalize_source_path(params['source_path']),
        'mount_path': mount_path,
        'tag': derive_tag(model),
        'device': _export.device_tag(_export.device_key(params['read_only'], params['cache'])),
        'read_only': params['read_only'],
        'persist': params['persist'],
        'guest_mount': params['guest_mount'],
        'cache': params['cache'],
        'read_ahead_kb': params['read_ahead_kb'],
        'mount_root': volume['mount_root'],
    }
    connection = {
        'meta_url': meta_url,
        'password': url_password or volume.get('meta_password'),
        'mount_root': volume['mount_root'],
        'cache_dir': volume.get('cache_dir'),
        'cache_size': volume.get('cache_size'),
        'client_path': volume.get('client_path'),
    }
    return desired, connection
