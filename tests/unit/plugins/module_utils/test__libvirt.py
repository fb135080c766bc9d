# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The libvirt boundary: device XML and the virtiofsd of a device, read from libvirt's pid file."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import subprocess
import time

import pytest

from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt


class _Dom:
    def name(self):
        return 'vm1'

    def UUIDString(self):  # pylint: disable=invalid-name
        return '11111111-2222-3333-4444-555555555555'

    def ID(self):  # pylint: disable=invalid-name
        return 7


@pytest.fixture
def fake_virtiofsd():
    # A process whose command line names virtiofsd, as libvirt's does.
    proc = subprocess.Popen(['virtiofsd-for-test', '30'], executable='sleep')
    # Until the child has exec'd, /proc/PID/cmdline is still the parent's (a python process).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open('/proc/%d/cmdline' % proc.pid, 'rb') as handle:
            if handle.read().startswith(b'virtiofsd-for-test'):
                break
        time.sleep(0.005)
    yield proc
    proc.kill()
    proc.wait()


def test_backend_alive_and_identity(tmp_path, fake_virtiofsd):
    domain = _libvirt.Domain(_Dom())
    run_dir = str(tmp_path)
    assert domain.backend_alive('fs0', run_dir) is None, 'no pid file: cannot be told'
    assert domain.backend_identity('fs0', run_dir) is None
    (tmp_path / '7-vm1-fs0-fs.pid').write_text('%d\n' % fake_virtiofsd.pid)
    assert domain.backend_alive('fs0', run_dir) is True
    identity = domain.backend_identity('fs0', run_dir)
    assert identity.startswith('%d.' % fake_virtiofsd.pid) and identity.split('.')[1].isdigit()
    assert domain.backend_identity('fs0', run_dir) == identity, 'stable while the process runs'
    assert domain.backend_alive('fs1', run_dir) is None, 'another device'
    fake_virtiofsd.kill()
    fake_virtiofsd.wait()
    assert domain.backend_alive('fs0', run_dir) is False
    assert domain.backend_identity('fs0', run_dir) is None


def test_backend_that_is_not_virtiofsd(tmp_path):
    domain = _libvirt.Domain(_Dom())
    (tmp_path / '7-vm1-fs0-fs.pid').write_text('1\n')   # init, not a virtiofsd (a reused PID)
    assert domain.backend_alive('fs0', str(tmp_path)) is False
    assert domain.backend_identity('fs0', str(tmp_path)) is None


def test_filesystem_xml_has_no_readonly():
    xml = _libvirt.filesystem_xml('/var/lib/aimodel/volumes/v/ro/models/m', 'aim-m-1', 'always')
    devs = _libvirt.filesystems('<domain><devices>%s</devices></domain>' % xml)
    assert devs == [{'tag': 'aim-m-1', 'source': '/var/lib/aimodel/volumes/v/ro/models/m', 'alias': None, 'cache': 'always'}]
    assert 'readonly' not in xml


# --- hot-plug slots, on the shapes of the lab's live XML (virsh dumpxml) ----------------------------------

def _port(index, function, hotplug=''):
    return ("<controller type='pci' index='%d' model='pcie-root-port'><model name='pcie-root-port'/>"
            "<target chassis='%d' port='0x%x'%s/><alias name='pci.%d'/>"
            "<address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x%x'%s/></controller>"
            % (index, index, 7 + index, hotplug, index, function, " multifunction='on'" if function == 0 else ''))


def q35_xml(ports=6, extra='', hotplug_off=()):
    """A running q35 VM as libvirt 9.0 shows it: pcie-root, root ports 1-N in slot 1 of the root bus, the disk
    on bus 2, the agent's virtio-serial on bus 1, the SATA controller integrated in the root bus."""
    return ("<domain type='qemu' id='3'><name>aimodel-lab-q35</name><os><type arch='x86_64' machine='pc-q35-7.2'>hvm"
            "</type></os><devices><emulator>/usr/bin/qemu-system-x86_64</emulator>"
            "<disk type='file' device='disk'><driver name='qemu' type='raw'/><target dev='vda' bus='virtio'/>"
            "<alias name='virtio-disk0'/><address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/>"
            "</disk><controller type='usb' index='0' model='none'><alias name='usb'/></controller>"
            "<controller type='pci' index='0' model='pcie-root'><alias name='pcie.0'/></controller>"
            + ''.join(_port(i, i - 1, " hotplug='off'" if i in hotplug_off else '') for i in range(1, ports + 1)) +
            "<controller type='sata' index='0'><alias name='ide'/>"
            "<address type='pci' domain='0x0000' bus='0x00' slot='0x1f' function='0x2'/></controller>"
            "<controller type='virtio-serial' index='0'><alias name='virtio-serial0'/>"
            "<address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></controller>"
            "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>"
            "<address type='virtio-serial' controller='0' bus='0' port='1'/></channel>"
            + extra + "<memballoon model='none'/></devices></domain>")


def virtiofs_on(bus, slot=0):
    return ("<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/>"
            "<source dir='/var/lib/aimodel/exports/u/ro'/><target dir='aimodel-ro'/><alias name='fs0'/>"
            "<address type='pci' domain='0x0000' bus='0x%02x' slot='0x%02x' function='0x0'/></filesystem>" % (bus, slot))


def pc_xml(extra=''):
    """A running pc (i440fx) VM as libvirt 9.0 shows it: pci-root, virtio-serial in slot 2, the disk in slot 3 (the
    host bridge in slot 0 and the PIIX3 in slot 1 are not listed)."""
    return ("<domain type='qemu' id='25'><name>aimodel-lab</name><os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm"
            "</type></os><devices><disk type='file' device='disk'><target dev='vda' bus='virtio'/>"
            "<address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/></disk>"
            "<controller type='usb' index='0' model='none'/><controller type='pci' index='0' model='pci-root'>"
            "<alias name='pci.0'/></controller><controller type='virtio-serial' index='0'>"
            "<address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/></controller>"
            + extra + "<memballoon model='none'/></devices></domain>")


def test_q35_free_slots_are_root_ports_with_nothing_on_their_bus():
    assert _libvirt.free_hotplug_slots(q35_xml()) == 4          # ports 3-6: 1 holds virtio-serial, 2 the disk
    assert _libvirt.free_hotplug_slots(q35_xml(extra=virtiofs_on(3))) == 3
    assert _libvirt.free_hotplug_slots(q35_xml(ports=3, extra=virtiofs_on(3))) == 0
    assert _libvirt.free_hotplug_slots(q35_xml(ports=2)) == 0, 'the integrated root bus takes no hot-plug'


def test_q35_ports_with_hotplug_off_do_not_count():
    assert _libvirt.free_hotplug_slots(q35_xml(hotplug_off=(4, 5))) == 2


def test_pc_free_slots_are_those_of_the_root_bus_and_its_bridges():
    assert _libvirt.free_hotplug_slots(pc_xml()) == 28           # slots 4-31
    assert _libvirt.free_hotplug_slots(pc_xml(virtiofs_on(0, 4))) == 27
    full = ''.join(virtiofs_on(0, slot) for slot in range(4, 32))
    assert _libvirt.free_hotplug_slots(pc_xml(full)) == 0
    bridge = ("<controller type='pci' index='1' model='pci-bridge'><model name='pci-bridge'/><target chassisNr='1'/>"
              "<address type='pci' domain='0x0000' bus='0x00' slot='0x1f' function='0x0'/></controller>")
    full_with_bridge = ''.join(virtiofs_on(0, slot) for slot in range(4, 31)) + bridge + virtiofs_on(1, 1)
    assert _libvirt.free_hotplug_slots(pc_xml(full_with_bridge)) == 30


def test_other_machine_types_cannot_be_told():
    assert _libvirt.free_hotplug_slots("<domain><devices><disk/></devices></domain>") is None
    assert _libvirt.free_hotplug_slots("<domain/>") is None
