#!/usr/bin/env python
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Print what one lab VM's models rest on as JSON, read without the collection's code (libvirt, the guest
agent and the host's /proc), for the assertions of vm_model_mount_scale:

  uuid
  live, config      its virtiofs devices: [{tag, source}] (live and persistent XML)
  virtiofsd         {tag: [{pid, ppid}]} of the live devices: the virtiofsd processes serving their source
  root_ports        pcie-root-port controllers in the live XML, and free_ports: those no device sits on
  host_binds        targets of the host's mounts below /var/lib/aimodel/exports/<uuid>/
  export_dir        whether /var/lib/aimodel/exports/<uuid> exists
  guest_mounts      targets of the guest's virtiofs mounts (its mountinfo)
  guest_fstab       the guest's fstab lines that name virtiofs or a bind

  scale_state.py --uri URI --vm VM --labkit DIR
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import argparse
import json
import os
import sys
import xml.etree.ElementTree as ET

EXPORTS = '/var/lib/aimodel/exports'


def devices(root):
    found = []
    for node in root.findall('./devices/filesystem'):
        target, source = node.find('target'), node.find('source')
        found.append({'tag': target.get('dir') if target is not None else None,
                      'source': source.get('dir') if source is not None else None})
    return found


def ports(root):
    """(indexes of the pcie-root-ports, indexes of those that no device or controller sits on)."""
    indexes = [int(c.get('index')) for c in root.findall('./devices/controller')
               if c.get('type') == 'pci' and c.get('model') == 'pcie-root-port']
    used = set(int(a.get('bus'), 16) for a in root.iter('address') if a.get('type') == 'pci' and a.get('bus'))
    return indexes, [i for i in indexes if i not in used]


def virtiofsd(source):
    """[{pid, ppid}] of the virtiofsd processes started for this source directory."""
    found = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as handle:
                argv = handle.read().decode('utf-8', 'replace').split('\0')
            with open('/proc/%s/stat' % pid) as handle:
                ppid = int(handle.read().rsplit(')', 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        options = [o for arg in argv for o in arg.split(',')]
        if argv and 'virtiofsd' in os.path.basename(argv[0]) and ('source=' + source) in options:
            found.append({'pid': int(pid), 'ppid': ppid})
    return sorted(found, key=lambda p: p['pid'])


def mount_targets(text, want=None):
    """Targets of the mountinfo lines (of file system type want, when given)."""
    found = []
    for line in text.splitlines():
        left, sep, right = line.partition(' - ')
        fields, rest = left.split(), right.split()
        if sep and len(fields) >= 5 and rest and (want is None or rest[0] == want):
            found.append(fields[4].replace('\\040', ' '))
    return found


def guest_text(labkit, dom, argv):
    code, out, err = labkit.run(dom, argv, 30).text()
    if code != 0:
        raise RuntimeError('%s in the guest: exit %s: %s' % (' '.join(argv), code, err))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--uri', required=True)
    parser.add_argument('--vm', required=True)
    parser.add_argument('--labkit', required=True, help='the directory of tests/lab/labkit.py')
    opts = parser.parse_args()
    sys.path.insert(0, opts.labkit)
    import labkit  # pylint: disable=import-outside-toplevel,import-error
    virt = labkit.libvirt()
    conn, dom = labkit.open_domain(opts.uri, opts.vm)
    try:
        live = ET.fromstring(dom.XMLDesc(0))
        out = {'uuid': dom.UUIDString(), 'live': devices(live),
               'config': devices(ET.fromstring(dom.XMLDesc(virt.VIR_DOMAIN_XML_INACTIVE)))}
        out['root_ports'], out['free_ports'] = ports(live)
        out['guest_mounts'] = mount_targets(guest_text(labkit, dom, ['cat', '/proc/self/mountinfo']), 'virtiofs')
        out['guest_fstab'] = [line.split() for line in guest_text(labkit, dom, ['cat', '/etc/fstab']).splitlines()
                              if len(line.split()) >= 4 and not line.startswith('#')
                              and (line.split()[2] == 'virtiofs' or 'bind' in line.split()[3].split(','))]
    finally:
        conn.close()
    base = os.path.join(EXPORTS, out['uuid'])
    with open('/proc/self/mountinfo') as handle:
        out['host_binds'] = [t for t in mount_targets(handle.read()) if t.startswith(base + '/')]
    out['export_dir'] = os.path.isdir(base)
    out['virtiofsd'] = dict((d['tag'], virtiofsd(d['source'])) for d in out['live'] if d['source'])
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
