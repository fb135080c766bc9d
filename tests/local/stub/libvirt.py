# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A stand-in for the libvirt binding (tests/local): a hypervisor that answers every module, without any VM, or
with the VMs of the JSON file that AIMODEL_STUB_DOMAINS names (stub/python-vm sets it): a list of objects with
name, uuid, active, persistent, xml (the live XML; the persistent XML is the same) and metadata (our metadata
element, or null). Nothing changes them: a module that would attach, detach or write gets an error."""

import io
import json
import os

VIR_DOMAIN_XML_INACTIVE = 2
VIR_DOMAIN_AFFECT_LIVE = 1
VIR_DOMAIN_AFFECT_CONFIG = 2
VIR_DOMAIN_METADATA_ELEMENT = 2

# The error codes of virterror.h that the modules look at.
_NO_DOMAIN = 42
_NO_DOMAIN_METADATA = 80
_OPERATION_UNSUPPORTED = 84
_AGENT_UNRESPONSIVE = 86


class libvirtError(Exception):  # pylint: disable=invalid-name
    def __init__(self, message, code=_NO_DOMAIN):
        super(libvirtError, self).__init__(message)
        self.code = code

    def get_error_code(self):
        return self.code


def registerErrorHandler(_handler, _ctx):  # pylint: disable=invalid-name
    return 0


def getVersion():  # pylint: disable=invalid-name
    return 9000000


def _domains():
    path = os.environ.get('AIMODEL_STUB_DOMAINS')
    if not path:
        return []
    with io.open(path, encoding='utf-8') as handle:  # open() of this module is libvirt's
        return [_Domain(spec) for spec in json.load(handle)]


class _Domain:
    def __init__(self, spec):
        self._spec = spec

    def name(self):
        return self._spec['name']

    def UUIDString(self):  # pylint: disable=invalid-name
        return self._spec['uuid']

    def isActive(self):  # pylint: disable=invalid-name
        return int(bool(self._spec.get('active')))

    def isPersistent(self):  # pylint: disable=invalid-name
        return int(bool(self._spec.get('persistent')))

    def XMLDesc(self, _flags=0):  # pylint: disable=invalid-name
        return self._spec['xml']

    def metadata(self, _type, _uri, _flags=0):
        if not self._spec.get('metadata'):
            raise libvirtError('metadata not found: Requested metadata element is not present', _NO_DOMAIN_METADATA)
        return self._spec['metadata']

    def ID(self):  # pylint: disable=invalid-name
        raise libvirtError('the stand-in keeps no domain IDs', _OPERATION_UNSUPPORTED)

    def _refuse(self, *_args):
        raise libvirtError('the stand-in binding changes no VM', _OPERATION_UNSUPPORTED)

    attachDeviceFlags = detachDeviceFlags = setMetadata = _refuse


class _Connection:
    def __init__(self):
        self._domains = _domains()

    def listAllDomains(self, _flags=0):  # pylint: disable=invalid-name
        return list(self._domains)

    def lookupByName(self, name):  # pylint: disable=invalid-name
        for dom in self._domains:
            if name in (dom.name(), dom.UUIDString()):
                return dom
        raise libvirtError('Domain not found: no domain with matching name %r' % name)

    lookupByUUIDString = lookupByName

    def getLibVersion(self):  # pylint: disable=invalid-name
        return 9000000

    def getVersion(self):  # pylint: disable=invalid-name
        return 7002000

    def close(self):
        return 0


def open(_uri):  # pylint: disable=redefined-builtin
    return _Connection()
