# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A stand-in for libvirt_qemu (tests/local): the guest agent of every stand-in VM does not answer."""

import libvirt  # the stand-in of this directory


def qemuAgentCommand(_domain, _command, _timeout, _flags):  # pylint: disable=invalid-name
    raise libvirt.libvirtError('Guest agent is not responding: the stand-in VM has no guest agent', 86)
