# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A stand-in for the libvirt binding (tests/local): a hypervisor without any VM, which answers every module."""


class libvirtError(Exception):  # pylint: disable=invalid-name
    def get_error_code(self):
        return 42  # VIR_ERR_NO_DOMAIN


def registerErrorHandler(_handler, _ctx):  # pylint: disable=invalid-name
    return 0


def getVersion():  # pylint: disable=invalid-name
    return 9000000


class _Connection:
    def listAllDomains(self, _flags=0):  # pylint: disable=invalid-name
        return []

    def lookupByName(self, name):  # pylint: disable=invalid-name
        raise libvirtError('Domain not found: no domain with matching name %r' % name)

    lookupByUUIDString = lookupByName

    def close(self):
        return 0


def open(_uri):  # pylint: disable=redefined-builtin
    return _Connection()
