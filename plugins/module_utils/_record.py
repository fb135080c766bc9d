# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The mount record kept in the domain's <metadata>.

The record lives with the VM: it follows it on migration and disappears when the VM is undefined.
Live metadata describes the running VM; persistent metadata describes what comes back at the next
boot (a ``persist: false`` mount is recorded live only, like its device). No secret is stored here.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import datetime
import xml.etree.ElementTree as ET

from ansible_collections.aimodel.kvm.plugins.module_utils._errors import AimodelError

NAMESPACE = 'https://github.com/aimodel/kvm/mounts/v1'
KEY = 'aimodel'

# The fields of one record, in the order they are written.
# ``tag`` names the model's directory in the VM's export tree; ``device`` is the tag of the VM's shared
# virtiofs device that serves it (a record without one is of a model mounted as a virtiofs device of its own,
# tagged ``tag``); ``mount_root`` is where the host mounts the volume (the libvirt hook pins from there).
# ``volume_uuid`` is the volume's identity as its metadata engine reports it and ``meta_url`` that engine's URL
# without its password: a volume is what they name, not its name (two engines may each hold a volume ``models``).
FIELDS = ('model', 'volume', 'volume_uuid', 'meta_url', 'source_path', 'mount_path', 'tag', 'device', 'read_only',
          'persist', 'guest_mount', 'cache', 'read_ahead_kb', 'mount_root', 'created', 'updated')
# Bookkeeping of the module, never returned: ``verified`` is the data path (virtiofsd process and host
# volume mount) under which the guest mount was last proven readable; live records only. ``detached``
# (``true``) marks a record kept while its model is taken out of the VM (``state: detached``, before a
# migration): nothing serves it, nothing pins it, and ``state: mounted`` from the record brings it back.
INTERNAL_FIELDS = ('verified', 'detached')
_BOOL_FIELDS = ('read_only', 'persist', 'guest_mount')
# The fields that define what is mounted; the others are bookkeeping.
IDENTITY_FIELDS = ('model', 'volume', 'volume_uuid', 'meta_url', 'source_path', 'mount_path', 'tag', 'device', 'read_only', 'persist',
                   'guest_mount', 'cache', 'read_ahead_kb', 'mount_root')
_INT_FIELDS = ('read_ahead_kb',)


class RecordError(AimodelError):
    pass


def timestamp():
    """The time a record is written at (its ``updated`` field): UTC, to the second."""
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def parse(xml_text):
    """Records from the metadata element's XML, as a dict model -> record dict."""
    records = {}
    if not xml_text:
        return records
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise RecordError('the mount record in the domain metadata is not valid XML: %s' % exc)
    for elem in root.iter():
        if elem.tag.rsplit('}', 1)[-1] != 'mount':
            continue
        record = {}
        for field in FIELDS + INTERNAL_FIELDS:
            value = elem.get(field)
            if field in INTERNAL_FIELDS:
                if value is not None:
                    record[field] = value
                continue
            if field in _BOOL_FIELDS:
                # Missing means the default, which is true for each of them.
                value = value != 'false'
            elif field in _INT_FIELDS and value is not None:
                try:
                    value = int(value)
                except ValueError:
                    raise RecordError('the mount record in the domain metadata has %s=%r, not a number' % (field, value))
            record[field] = value
        if record.get('model'):
            records[record['model']] = record
    return records


def render(records):
    """XML for the metadata element (no namespace: libvirt adds it from the key and URI)."""
    root = ET.Element('mounts')
    for model in sorted(records):
        record = records[model]
        attrs = {}
        for field in FIELDS + INTERNAL_FIELDS:
            value = record.get(field)
            if value is None:
                continue
            if field in _BOOL_FIELDS:
                value = 'true' if value else 'false'
            attrs[field] = str(value)
        ET.SubElement(root, 'mount', attrs)
    return ET.tostring(root, encoding='unicode')


def same(a, b):
    """Whether two records describe the same mount (timestamps aside); a detached record is not its mount."""
    if a is None or b is None:
        return a is b
    return is_detached(a) == is_detached(b) and all(a.get(f) == b.get(f) for f in IDENTITY_FIELDS)


def is_detached(record):
    """Whether the record is kept for a model taken out of the VM (``state: detached``)."""
    return bool(record) and record.get('detached') == 'true'


def attached(records):
    """The records (model -> record) without the detached ones."""
    return dict((m, r) for m, r in records.items() if not is_detached(r))


def public(record):
    """A record as returned to the user: every field, booleans as booleans."""
    if record is None:
        return None
    return dict((f, record.get(f)) for f in FIELDS)
