# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name


class ModuleDocFragment:  # pylint: disable=too-few-public-methods

    DOCUMENTATION = r'''
options:
  uri:
    description:
      - The libvirt connection URI of the hypervisor the task runs on.
      - If not set, the environment variable E(LIBVIRT_DEFAULT_URI) is used, then V(qemu:///system).
      - Only the local hypervisor can be named, as one of V(qemu:///system), V(qemu:///session),
        V(qemu+unix:///system) and V(qemu+unix:///session), exactly. Anything else is refused before libvirt is
        asked, with the reason - a transport that makes libvirt run a program or reach another host (V(qemu+ssh),
        V(qemu+libssh), V(qemu+libssh2), V(qemu+ext) with its C(command=), V(qemu+tcp), V(qemu+tls)), a host name,
        query parameters (C(socket=), C(command=), ...), another driver (V(test:///default), ...) or an alias.
    type: str
    default: qemu:///system
requirements:
  - The libvirt Python binding (C(libvirt-python)) for the Python interpreter that runs the module on the hypervisor.
'''
