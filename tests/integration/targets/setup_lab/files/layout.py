#!/usr/bin/env python
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Print the data path of one lab VM as JSON, read without the collection's code (libvirt, the guest agent
and the host's mount table), for the lab targets' assertions:

  uuid, active
  live, config      its virtiofs devices: [{tag, source, alias}] (live and persistent XML)
  records           {live: {model: attributes}, config: {...}} (the domain metadata, raw)
  guest_mounts      the guest's virtiofs mounts: [{id, dev, root, target, fstype, source, options}] (its mountinfo)
  fstab             the guest's fstab lines that name virtiofs or a bind, as lists of fields
  host_binds        the host's mounts under /var/lib/aimodel/exports/<uuid>/: [{id, dev, root, target, fstype}]
  virtiofsd         {tag: [pid, ...]} of the live devices: the virtiofsd processes serving their source

  layout.py --uri URI --vm VM --labkit DIR
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import argparse
import json
import os
import sys
import xml.etree.ElementTree as ET

NAMESPACE = 'https://github.com/aimodel/kvm/mounts/v1'
EXPORTS = '/var/lib/aimodel/exports'


def unescape(field):
    """Mountinfo's octal escapes (\\040 for a space...)."""
    out, i = '', 0
    while i < len(field):
        if field[i] == '\\' and field[i + 1:i + 4].isdigit():
            out += chr(int(field[i + 1:i + 4], 8))
            i += 4
        else:
            out += field[i]
            i += 1
    return out


def mountinfo(text):
    found = []
    for line in text.splitlines():
        left, sep, right = line.partition(' - ')
        fields, rest = left.split(), right.split()
        if sep and len(fields) >= 6 and len(rest) >= 2:
            found.append({'id': int(fields[0]), 'dev': fields[2], 'root': unescape(fields[3]), 'target': unescape(fields[4]),
                          'options': fields[5].split(','), 'fstype': rest[0], 'source': unescape(rest[1])})
    return found


def devices(xml):
    found = []
    for node in ET.fromstring(xml).findall('./devices/filesystem'):
        target, source, alias = node.find('target'), node.find('source'), node.find('alias')
        found.append({'tag': target.get('dir') if target is not None else None,
                      'source': source.get('dir') if source is not None else None,
                      'alias': alias.get('name') if alias is not None else None})
    return found


def records(xml):
    if not xml:
        return {}
    root = ET.fromstring(xml)
    return dict((m.get('model'), dict(m.attrib)) for m in root.iter() if m.tag.rsplit('}', 1)[-1] == 'mount')


def processes(source):
    """PIDs of the virtiofsd processes started for this source directory."""
    pids = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as handle:
                argv = handle.read().decode('utf-8', 'replace').split('\0')
        except OSError:
            continue
        options = [o for arg in argv for o in arg.split(',')]
        if argv and 'virtiofsd' in os.path.basename(argv[0]) and ('source=' + source) in options:
            pids.append(int(pid))
    return sorted(pids)


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
        out = {'uuid': dom.UUIDString(), 'active': bool(dom.isActive())}
        out['config'] = devices(dom.XMLDesc(virt.VIR_DOMAIN_XML_INACTIVE))
        out['live'] = devices(dom.XMLDesc(0)) if out['active'] else []
        out['records'] = {}
        for key, flag in (('live', virt.VIR_DOMAIN_AFFECT_LIVE), ('config', virt.VIR_DOMAIN_AFFECT_CONFIG)):
            try:
                raw = dom.metadata(virt.VIR_DOMAIN_METADATA_ELEMENT, NAMESPACE, flag)
            except virt.libvirtError:
                raw = None
            out['records'][key] = records(raw) if (out['active'] or key == 'config') else {}
        out['guest_mounts'], out['fstab'] = [], []
        if out['active']:
            out['guest_mounts'] = [m for m in mountinfo(guest_text(labkit, dom, ['cat', '/proc/self/mountinfo']))
                                   if m['fstype'] == 'virtiofs']
            for line in guest_text(labkit, dom, ['cat', '/etc/fstab']).splitlines():
                fields = line.split()
                if len(fields) >= 4 and not fields[0].startswith('#') and (
                        fields[2] == 'virtiofs' or 'bind' in fields[3].split(',')):
                    out['fstab'].append(fields)
    finally:
        conn.close()
    base = os.path.join(EXPORTS, out['uuid']) + '/'
    with open('/proc/self/mountinfo') as handle:
        out['host_binds'] = [{'id': m['id'], 'dev': m['dev'], 'root': m['root'], 'target': m['target'],
                              'fstype': m['fstype']}
                             for m in mountinfo(handle.read()) if m['target'].startswith(base)]
    out['virtiofsd'] = dict((d['tag'], processes(d['source'])) for d in out['live'] if d['source'])
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
