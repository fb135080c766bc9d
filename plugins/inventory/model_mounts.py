# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r'''
---
name: model_mounts
short_description: The VMs of libvirt hypervisors and the AI models recorded as mounted in them
version_added: 0.1.0
description:
  - Reads, read-only, the libvirt of each hypervisor of O(hypervisors) and yields its VMs (libvirt domains) as hosts,
    with the mounts that M(aimodel.kvm.vm_model_mount) recorded in each domain's metadata as host variables, and
    groups per hypervisor, per model and of the VMs with at least one model.
  - The record is read from the live metadata of a running VM and from the persistent metadata of a stopped one,
    with the collection's own record parser. The plugin never talks to a guest (no guest agent call), as the guest is
    not trusted and may be slow. What the guest really has mounted is what M(aimodel.kvm.vm_model_mount_info)
    reports.
  - "Host variables of each VM: C(aimodel_vm) (the VM's name), C(aimodel_uuid), C(aimodel_state) (V(running) for an
    active domain, paused ones included, V(shut off) otherwise, V(null) when it could not be read), C(aimodel_hypervisor) (a dict with C(name) and
    C(uri)), C(aimodel_models) (the sorted model names) and C(aimodel_mounts), one dict per recorded mount with
    C(model), C(volume), C(volume_uuid), C(source_path), C(mount_path), C(read_only), C(device), C(tag) and
    C(status): V(recorded) when the VM runs (its live record has the mount), V(pending) when it is stopped (the mount
    comes back at its next start), V(detached) for a record kept while its model is out of the VM (a migration in
    progress; not in C(aimodel_models) nor in the groups). C(aimodel_record_error) is the reason its record was not read, or V(null).
    The metadata engine URL of a volume is left out."
  - "Groups: C(hypervisor_<name>) per hypervisor (also when it did not answer, then empty), C(model_<model>) per
    recorded model (running and stopped VMs), C(aimodel_mounted) (the VMs with at least one recorded mount). Group
    names are sanitized as Ansible sanitizes them (every character but letters, digits and C(_) becomes C(_)):
    the model C(all-minilm-l6-v2) is the group C(model_all_minilm_l6_v2). Two model names that differ only there
    share a group; C(aimodel_mounts) has the names as recorded."
  - The VM hosts get no C(ansible_host) or connection variables, they are inventory entries for reports and for
    C(--limit). Use O(compose) to give them one, for example from a variable of your own.
  - Hosts are named as O(host_name) says. Names are not identities, two hypervisors may each have a VM of the same
    name, see O(host_name) for what happens then.
  - "Trust: the libvirt of each hypervisor (and its root) is trusted. The domain metadata is written by whoever may
    edit a domain's XML on a hypervisor: a record of more than 1048576 characters, one that does not parse, and a mount whose model
    name is not a valid model name are skipped with a warning that names the VM and the hypervisor, and the VM is
    still listed. A hypervisor that cannot be read is a warning, and the other hypervisors still yield their hosts,
    unless O(strict_hypervisors) is set. Strings from the record are not trusted as templates."
author:
  - aimodel.kvm developers (@aimodel)
requirements:
  - The libvirt Python binding (C(pip install libvirt-python)) on the controller, in the execution environment
    for AWX. The hypervisors themselves need nothing beyond libvirt (and an SSH server for C(qemu+ssh)).
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
options:
  plugin:
    description:
      - The name of this plugin; it makes a file named C(*.aimodel.yml) or C(*.aimodel.yaml) a source of it.
    type: str
    required: true
    choices: [aimodel.kvm.model_mounts]
  hypervisors:
    description:
      - The hypervisors to read, each with a name and a libvirt URI. Names are unique; their groups are
        C(hypervisor_<name>).
      - "The URI names the QEMU driver only: V(qemu:///system) (or V(qemu+unix:///system), V(qemu:///session)) for
        the controller host itself; V(qemu+ssh://[user@]host[:port]/system), V(qemu+libssh://...),
        V(qemu+libssh2://...), V(qemu+tls://host/system) or V(qemu://host/system) (TLS) for another host."
      - "Refused, naming the option and why: another driver; the transport C(ext) (it runs the program of its
        C(command) parameter on the controller) and C(tcp) (unencrypted); a password in the URI (it would show in the
        host variables; use an SSH key); a path other than C(/system) or C(/session); a fragment; and every query
        parameter but C(keyfile), C(known_hosts), C(no_tty), C(sshauth) and C(pkipath). C(command), C(netcat),
        C(proxy), C(mode) and C(socket) choose a program to run or a socket to talk to, C(name) another URI for the
        hypervisor's daemon, C(no_verify) and C(known_hosts_verify) turn off the check of the hypervisor's host key
        or certificate. The list of hypervisors may come from a partly trusted place (a generated list, an AWX
        project many can push to): its URIs must not make the controller run a program or talk to something other
        than a hypervisor's QEMU driver. Unlike the modules, which run on the hypervisor and take only its local URIs,
        the plugin runs on the controller and reaches remote hypervisors. The names and URIs become host variables as
        plain text, never as templates (O(compose), O(groups) and O(keyed_groups) are expressions run on the
        controller, so whoever writes them is as trusted as a playbook's author)."
      - The connection is read-only (the hypervisor's read-only socket); nothing is ever changed.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - The hypervisor's name in the inventory, letters, digits, C(.), C(_) and C(-), starting with a letter or
            digit, at most 63 characters.
        type: str
        required: true
      uri:
        description:
          - Its libvirt URI, see above.
        type: str
        required: true
  host_name:
    description:
      - How VM hosts are named. V(name), the VM's name. V(uuid), the VM's UUID. V(hypervisor_name),
        C(<hypervisor>_<vm name>).
      - With V(name), VMs of the same name on different hypervisors are each named C(<hypervisor>_<vm name>), with a
        warning that names them; every other VM keeps its name. With V(uuid), a UUID seen on two hypervisors (a VM
        defined on both, or being migrated) is named C(<hypervisor>_<uuid>) on each, with a warning. A name that still
        clashes fails the inventory, naming both VMs.
    type: str
    choices: [name, uuid, hypervisor_name]
    default: name
  strict_hypervisors:
    description:
      - If V(false), a hypervisor that cannot be read (connection refused, an SSH or TLS failure, no answer within
        O(timeout)) is a warning and the other hypervisors still yield their hosts.
      - If V(true), it fails the inventory source, naming every hypervisor that could not be read.
    type: bool
    default: false
  timeout:
    description:
      - Seconds a hypervisor may take to be connected to and read. The hypervisors are read in parallel, at most
        O(max_connections) at a time; one that takes longer is reported as not answering. libvirt has no timeout of
        its own, and a connection that hangs (an unreachable host over SSH) would otherwise wait for the TCP timeout.
    type: float
    default: 30
    env:
      - name: AIMODEL_INVENTORY_TIMEOUT
    ini:
      - section: aimodel_model_mounts
        key: timeout
  max_connections:
    description:
      - How many hypervisors are read at the same time.
    type: int
    default: 8
  ssh_keyfile:
    description:
      - A private key file for the hypervisors reached over SSH (C(qemu+ssh), C(qemu+libssh), C(qemu+libssh2)), which is
        added as the C(keyfile) parameter to each such URI that has none of its own (the hypervisor's host variable
        C(aimodel_hypervisor.uri) stays as written).
      - For an AWX inventory source, where the key is a file the credential writes at a path of its own choosing.
    type: path
    env:
      - name: AIMODEL_SSH_KEYFILE
  ssh_known_hosts:
    description:
      - A known_hosts file with the host keys of the hypervisors, added as the C(known_hosts) parameter to each
        C(qemu+libssh) or C(qemu+libssh2) URI that has none of its own (libvirt's C(qemu+ssh) transport runs the
        C(ssh) program, which reads its own known_hosts files).
    type: path
    env:
      - name: AIMODEL_SSH_KNOWN_HOSTS
'''

EXAMPLES = r'''
# fleet.aimodel.yml: three hypervisors, two over SSH (the controller's user needs an SSH key that the hypervisors'
# root accepts, and their host keys in known_hosts), and the controller host itself.
plugin: aimodel.kvm.model_mounts
hypervisors:
  - name: hv1
    uri: qemu+ssh://root@hv1.example.com/system
  - name: hv2
    uri: qemu+ssh://root@hv2.example.com/system?keyfile=/runner/.ssh/aimodel_ed25519
  - name: local
    uri: qemu:///system
# Two VMs of the same name on different hypervisors are then hv1_<vm> and hv2_<vm>.
host_name: name
# Only the running VMs that have a model, and a group per volume.
groups:
  running_with_models: aimodel_state == 'running' and aimodel_models | length > 0
keyed_groups:
  - key: aimodel_mounts | map(attribute='volume') | list
    prefix: volume
# Give the VMs an address only if you mean to connect to them (here from a naming scheme).
compose:
  ansible_host: aimodel_vm ~ '.vms.example.com'
# Read the fleet at most once an hour.
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: /tmp/aimodel-inventory
cache_timeout: 3600

# The groups:
#   ansible-inventory -i fleet.aimodel.yml --graph
# Which VMs have the model all-minilm-l6-v2 (running or not):
#   ansible -i fleet.aimodel.yml model_all_minilm_l6_v2 --list-hosts
# Where each model is mounted, as host variables:
#   ansible-inventory -i fleet.aimodel.yml --list
# The hypervisors' own playbooks limited to the VMs that have a model, next to a static inventory:
#   ansible-playbook -i inventory.yml -i fleet.aimodel.yml aimodel.kvm.report

# The same with host names that are unique whatever the fleet holds.
---
plugin: aimodel.kvm.model_mounts
hypervisors:
  - name: hv1
    uri: qemu+ssh://root@hv1.example.com/system
host_name: hypervisor_name
strict_hypervisors: true
timeout: 10
'''

import re
import threading
import time
from urllib.parse import quote, unquote

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.inventory.group import to_safe_group_name
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.display import Display

from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _record
from ansible_collections.aimodel.kvm.plugins.module_utils import _spec
from ansible_collections.aimodel.kvm.plugins.module_utils._errors import AimodelError

display = Display()

PLUGIN_NAME = 'aimodel.kvm.model_mounts'
GROUP_MOUNTED = 'aimodel_mounted'
HYPERVISOR_PREFIX = 'hypervisor_'
MODEL_PREFIX = 'model_'

STATE_RUNNING = 'running'
STATE_SHUT_OFF = 'shut off'
STATUS_RECORDED = 'recorded'
STATUS_PENDING = 'pending'
STATUS_DETACHED = 'detached'

# What of a record becomes a host variable (the metadata engine's URL is left out: it names internal hosts).
MOUNT_FIELDS = ('model', 'volume', 'volume_uuid', 'source_path', 'mount_path', 'read_only', 'device', 'tag')
# A record larger than this is not parsed: the modules write some hundred bytes per model.
MAX_RECORD_BYTES = 1024 * 1024

HYPERVISOR_NAME_MAX_LEN = 63
# How much of a message that quotes the metadata goes into a warning or a host variable.
MAX_MESSAGE = 1024

# --- libvirt URIs of hypervisors ------------------------------------------------------------------
# The plugin runs on the controller and reaches remote hypervisors, so it takes more than the modules' local URIs
# (``_spec.LOCAL_URIS``), and nothing that makes libvirt run a program of the URI's choosing or talk to anything but
# a hypervisor's QEMU driver.
TRANSPORTS = (None, 'unix', 'ssh', 'libssh', 'libssh2', 'tls')
_REFUSED_TRANSPORTS = {
    'ext': 'runs the program of its command= parameter on the controller',
    'tcp': 'is unencrypted',
}
URI_PATHS = ('/system', '/session')
# Query parameters that only say how to authenticate to the hypervisor or verify it.
URI_PARAMETERS = ('keyfile', 'known_hosts', 'no_tty', 'sshauth', 'pkipath')
_REFUSED_PARAMETERS = {
    'command': 'names a program that libvirt runs on the controller',
    'netcat': 'names a program that libvirt runs on the hypervisor',
    'proxy': 'chooses the program that libvirt runs on the hypervisor',
    'mode': 'chooses the program that libvirt runs on the hypervisor',
    'socket': 'names the socket libvirt talks to on the hypervisor',
    'name': "chooses another URI for the hypervisor's daemon to open",
    'no_verify': "turns off the check of the hypervisor's certificate",
    'known_hosts_verify': "can turn off the check of the hypervisor's host key",
}
_LABEL = r'[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?'
_AUTHORITY_RE = re.compile(r'^(?:(?P<user>[A-Za-z0-9_][A-Za-z0-9._-]*)@)?'
                           r'(?P<host>%s(?:\.%s)*|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?$' % (_LABEL, _LABEL))


def validate_hypervisor_uri(value, field='uri'):
    """The libvirt URI of a hypervisor the controller may read (see the option ``hypervisors``), or SpecError."""
    _spec.check_text(field, value)
    if value in _spec.LOCAL_URIS:
        return value
    match = _spec.URI_RE.match(value)
    if not match:
        raise SpecError(field, '%r is not a libvirt URI (driver[+transport]://[user@]host/system)' % value)
    driver, transport, authority, path, query, fragment = match.groups()
    if driver != 'qemu':
        raise SpecError(field, '%r names the driver %r: only the QEMU driver (qemu) is read' % (value, driver))
    if transport in _REFUSED_TRANSPORTS:
        raise SpecError(field, '%r uses the transport %r, which %s' % (value, transport, _REFUSED_TRANSPORTS[transport]))
    if transport not in TRANSPORTS:
        raise SpecError(field, '%r uses the transport %r: use one of %s'
                        % (value, transport, ', '.join(t for t in TRANSPORTS if t)))
    if '@' in authority and ':' in authority.split('@', 1)[0]:
        raise SpecError(field, '%r has a password: it would show in the host variables, use an SSH key' % value)
    if transport == 'unix' and authority:
        raise SpecError(field, '%r names a host with the local transport unix' % value)
    if transport not in (None, 'unix') and not authority:
        raise SpecError(field, '%r uses the transport %r and names no host' % (value, transport))
    if authority and not _AUTHORITY_RE.match(authority):
        raise SpecError(field, '%r: %r is not [user@]host[:port] (a host name or an address)' % (value, authority))
    if path not in URI_PATHS:
        raise SpecError(field, '%r has the path %r: use %s' % (value, path, ' or '.join(URI_PATHS)))
    if fragment:
        raise SpecError(field, '%r has a fragment (%s)' % (value, fragment))
    for name in _parameter_names(query):
        if name in _REFUSED_PARAMETERS:
            raise SpecError(field, '%r has the parameter %s, which %s' % (value, name, _REFUSED_PARAMETERS[name]))
        if name not in URI_PARAMETERS:
            raise SpecError(field, '%r has the parameter %r: only %s are allowed' % (value, name, ', '.join(URI_PARAMETERS)))
    return value


def connection_uri(uri, keyfile=None, known_hosts=None):
    """The URI libvirt is given: ``uri`` with ``keyfile`` and ``known_hosts`` added where its transport takes them and
    it names none of its own."""
    match = _spec.URI_RE.match(uri)
    if not match:
        return uri
    transport, query = match.group(2), match.group(5)
    names = _parameter_names(query)
    extra = []
    if keyfile and transport in ('ssh', 'libssh', 'libssh2') and 'keyfile' not in names:
        extra.append('keyfile=' + quote(keyfile, safe='/'))
    if known_hosts and transport in ('libssh', 'libssh2') and 'known_hosts' not in names:
        extra.append('known_hosts=' + quote(known_hosts, safe='/'))
    if not extra:
        return uri
    return uri + ('&' if query and len(query) > 1 else '' if query else '?') + '&'.join(extra)


def _parameter_names(query):
    """The names of a URI's query parameters as libvirt reads them: split at & and ;, %-decoded, in any case."""
    if not query:
        return []
    names = []
    for item in re.split('[&;]', query[1:]):
        if item:
            names.append(unquote(item.split('=', 1)[0]).lower())
    return names


class SpecError(_spec.SpecError):
    """A bad option of the inventory source; the message starts with the option."""


def validate_hypervisors(value):
    """The option ``hypervisors`` as a list of {'name', 'uri'}, or SpecError naming the entry at fault."""
    if not isinstance(value, list) or not value:
        raise SpecError('hypervisors', 'must be a non-empty list of entries with name and uri')
    seen_names, seen_groups, seen_uris, result = {}, {}, {}, []
    for index, entry in enumerate(value):
        where = 'hypervisors[%d]' % index
        if not isinstance(entry, dict):
            raise SpecError(where, 'must be a dict with name and uri, got %s' % type(entry).__name__)
        unknown = sorted(set(entry) - set(('name', 'uri')))
        if unknown:
            raise SpecError(where, 'has unknown keys %s (only name and uri)' % ', '.join(map(str, unknown)))
        for key in ('name', 'uri'):
            if entry.get(key) is None:
                raise SpecError(where, 'has no %s' % key)
        name = _spec.validate_name(where + '.name', entry['name'], HYPERVISOR_NAME_MAX_LEN)
        uri = validate_hypervisor_uri(entry['uri'], where + '.uri')
        group = hypervisor_group(name)
        if name in seen_names:
            raise SpecError(where + '.name', '%r is also the name of hypervisors[%d]' % (name, seen_names[name]))
        if group in seen_groups:
            raise SpecError(where + '.name', '%r and the name of hypervisors[%d] are both the group %s'
                            % (name, seen_groups[group], group))
        if uri in seen_uris:
            raise SpecError(where + '.uri', '%r is also the URI of hypervisors[%d]' % (uri, seen_uris[uri]))
        seen_names[name], seen_groups[group], seen_uris[uri] = index, index, index
        # Plain strings: the source file is loaded as trusted templates, and these become host variables (a URI's
        # parameter value may hold "{{").
        result.append({'name': str(name), 'uri': str(uri)})
    return result


def safe_group_name(name):
    """A group name as Ansible sanitizes one (whatever TRANSFORM_INVALID_GROUP_CHARS says)."""
    return to_safe_group_name(name, force=True, silent=True)


def hypervisor_group(name):
    return safe_group_name(HYPERVISOR_PREFIX + name)


def model_group(model):
    return safe_group_name(MODEL_PREFIX + model)


# --- reading one hypervisor ------------------------------------------------------------------------

class HypervisorError(AimodelError):
    """A hypervisor that could not be read."""


def open_hypervisor(uri):
    """A read-only ``_libvirt.Connection`` to this hypervisor (the one boundary the unit tests replace)."""
    libvirt = _libvirt.libvirt
    # libvirt-python prints every error to stderr unless a handler is set.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        return _libvirt.Connection(libvirt.openReadOnly(uri))
    except libvirt.libvirtError as exc:
        raise HypervisorError('cannot connect to libvirt at %s: %s' % (uri, exc))


def read_hypervisor(hypervisor):
    """What one hypervisor holds, as plain data (what the cache keeps): {'name', 'uri', 'error', 'warnings',
    'vms'}; each VM {'name', 'uuid', 'state', 'mounts', 'record_error'}. One VM that cannot be read is that VM's
    ``record_error`` and a warning, never the hypervisor's failure."""
    result = {'name': hypervisor['name'], 'uri': hypervisor['uri'], 'error': None, 'warnings': [], 'vms': []}
    try:
        conn = open_hypervisor(hypervisor.get('connect') or hypervisor['uri'])
    except AimodelError as exc:
        result['error'] = str(exc)
        return result
    try:
        try:
            domains = conn.domains()
        except AimodelError as exc:
            result['error'] = str(exc)
            return result
        for domain in domains:
            vm = read_vm(domain, hypervisor, result['warnings'])
            if vm is not None:
                result['vms'].append(vm)
    finally:
        conn.close()
    result['vms'].sort(key=lambda vm: (vm['name'], vm['uuid']))
    return result


def read_vm(domain, hypervisor, warnings):
    """One VM as plain data, or None when it was undefined while it was read."""
    where = 'VM %s on hypervisor %s' % (domain.name, hypervisor['name'])
    vm = {'name': domain.name, 'uuid': domain.uuid, 'state': None, 'mounts': [], 'record_error': None}
    try:
        active = domain.is_active()
        vm['state'] = STATE_RUNNING if active else STATE_SHUT_OFF
        # The record of what is mounted now: live when the VM runs, persistent when it is stopped.
        xml_text = domain.get_metadata(config=not active)
        if xml_text and len(xml_text) > MAX_RECORD_BYTES:
            raise _record.RecordError('the mount record in the domain metadata has %d characters, more than %d'
                                      % (len(xml_text), MAX_RECORD_BYTES))
        records = _record.parse(xml_text)
    except _libvirt.VirtError as exc:
        if exc.code == _libvirt.ERR_NO_DOMAIN:
            return None
        vm['record_error'] = _guest.clip(exc, MAX_MESSAGE)
    except Exception as exc:  # pylint: disable=broad-except
        # Whatever the metadata holds, it is this VM's problem only.
        vm['record_error'] = _guest.clip(str(exc) or type(exc).__name__, MAX_MESSAGE)
    else:
        vm['mounts'] = mounts_of(records, active, where, warnings)
        return vm
    warnings.append('%s: its mount record was skipped: %s' % (where, vm['record_error']))
    return vm


def mounts_of(records, active, where, warnings):
    """The host variable ``aimodel_mounts`` of one VM from its parsed records; a mount whose model name is not a
    model name is skipped with a warning."""
    mounts = []
    for model in sorted(records):
        try:
            _spec.validate_model(model)
        except _spec.SpecError as exc:
            warnings.append('%s: a mount of its record was skipped: %s' % (where, _guest.clip(exc, MAX_MESSAGE)))
            continue
        record = records[model]
        mount = dict((field, record.get(field)) for field in MOUNT_FIELDS)
        if _record.is_detached(record):
            mount['status'] = STATUS_DETACHED
        else:
            mount['status'] = STATUS_RECORDED if active else STATUS_PENDING
        mounts.append(mount)
    return mounts


class _Job:
    def __init__(self, hypervisor):
        self.hypervisor = hypervisor
        self.started = None
        self.result = None


def read_fleet(hypervisors, timeout, max_connections):
    """Every hypervisor read in parallel (at most ``max_connections`` at once, each for at most ``timeout``
    seconds), in the order given. A read that takes longer is left behind (libvirt calls cannot be interrupted) in a
    daemon thread, and a new worker takes its place."""
    jobs = [_Job(hv) for hv in hypervisors]
    todo = list(reversed(jobs))
    cond = threading.Condition()

    def work():
        while True:
            with cond:
                if not todo:
                    return
                job = todo.pop()
                job.started = time.monotonic()
            try:
                result = read_hypervisor(job.hypervisor)
            except Exception as exc:  # pylint: disable=broad-except
                result = {'name': job.hypervisor['name'], 'uri': job.hypervisor['uri'], 'warnings': [], 'vms': [],
                          'error': 'cannot read libvirt at %s: %s' % (job.hypervisor['uri'], exc)}
            with cond:
                if job.result is None:
                    job.result = result
                cond.notify_all()

    def start_worker():
        threading.Thread(target=work, name='aimodel-inventory', daemon=True).start()

    for _index in range(max(1, min(max_connections, len(jobs)))):
        start_worker()
    with cond:
        while True:
            now = time.monotonic()
            waiting = [job for job in jobs if job.result is None]
            if not waiting:
                break
            for job in waiting:
                if job.started is not None and now - job.started >= timeout:
                    job.result = {'name': job.hypervisor['name'], 'uri': job.hypervisor['uri'], 'warnings': [],
                                  'vms': [], 'error': 'libvirt at %s did not answer within %s seconds'
                                  % (job.hypervisor['uri'], _seconds(timeout))}
                    start_worker()
            deadlines = [job.started + timeout - now for job in waiting if job.started is not None and job.result is None]
            cond.wait(max(0.01, min(deadlines)) if deadlines else 0.1)
    return [job.result for job in jobs]


def _seconds(value):
    return ('%g' % value) if isinstance(value, float) else str(value)


# --- host names -----------------------------------------------------------------------------------

def host_names(fleet, mode):
    """{(hypervisor, uuid): host name} of every VM of the fleet, and the warnings about names that clashed."""
    def primary(hv, vm):
        if mode == 'uuid':
            return vm['uuid']
        if mode == 'hypervisor_name':
            return '%s_%s' % (hv['name'], vm['name'])
        return vm['name']

    def fallback(hv, vm):
        return '%s_%s' % (hv['name'], vm['uuid'] if mode == 'uuid' else vm['name'])

    by_name = {}
    for hv in fleet:
        for vm in hv['vms']:
            by_name.setdefault(primary(hv, vm), []).append((hv, vm))
    names, warnings, owner = {}, [], {}
    for name in sorted(by_name):
        holders = by_name[name]
        if len(holders) > 1 and mode != 'hypervisor_name':
            renamed = [(fallback(hv, vm), hv, vm) for hv, vm in holders]
            warnings.append('%s %s is on hypervisors %s: its hosts are named %s (names are not identities; host_name: '
                            'hypervisor_name names every VM so)'
                            % ('the UUID' if mode == 'uuid' else 'the VM name', name,
                               ', '.join(hv['name'] for _n, hv, _vm in renamed), ', '.join(n for n, _hv, _vm in renamed)))
        else:
            renamed = [(name, hv, vm) for hv, vm in holders]
        for host, hv, vm in renamed:
            if host in owner:
                other_hv, other_vm = owner[host]
                raise AnsibleParserError(
                    '%s: the host name %s is both VM %s (%s) on hypervisor %s and VM %s (%s) on hypervisor %s; choose '
                    'another host_name' % (PLUGIN_NAME, host, other_vm['name'], other_vm['uuid'], other_hv['name'],
                                           vm['name'], vm['uuid'], hv['name']))
            owner[host] = (hv, vm)
            names[(hv['name'], vm['uuid'])] = host
    return names, warnings


# --- the plugin -----------------------------------------------------------------------------------

class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    """Hosts from the VMs of libvirt hypervisors, with the models recorded in their domain metadata."""

    NAME = PLUGIN_NAME

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and path.endswith(('.aimodel.yml', '.aimodel.yaml'))

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        self._read_config_data(path)
        try:
            hypervisors = validate_hypervisors(self.get_option('hypervisors'))
        except _spec.SpecError as exc:
            raise AnsibleParserError('%s: %s' % (PLUGIN_NAME, exc))
        timeout, max_connections = self.get_option('timeout'), self.get_option('max_connections')
        if not timeout or timeout <= 0:
            raise AnsibleParserError('%s: timeout: must be a positive number of seconds, got %r' % (PLUGIN_NAME, timeout))
        if not max_connections or max_connections < 1:
            raise AnsibleParserError('%s: max_connections: must be at least 1, got %r' % (PLUGIN_NAME, max_connections))

        cache_key = self.get_cache_key(path)
        use_cache = self.get_option('cache')
        fleet, update_cache, cached = None, False, False
        if use_cache and cache:
            try:
                fleet = self._cache[cache_key]
                cached = True
            except KeyError:
                update_cache = True
        elif use_cache:
            update_cache = True
        if fleet is None:
            if not _libvirt.HAS_LIBVIRT:
                raise AnsibleError(
                    '%s: the libvirt Python binding is missing on the controller (in the execution environment for '
                    'AWX): pip install libvirt-python (it builds against libvirt\'s development files: libvirt-dev on '
                    'Debian/Ubuntu, libvirt-devel on RHEL-family hosts). %s'
                    % (PLUGIN_NAME, _libvirt.LIBVIRT_IMPORT_ERROR.strip().splitlines()[-1]))
            keyfile, known_hosts = self.get_option('ssh_keyfile'), self.get_option('ssh_known_hosts')
            for hv in hypervisors:
                hv['connect'] = connection_uri(hv['uri'], keyfile, known_hosts)
            fleet = read_fleet(hypervisors, timeout, max_connections)
        failed = [hv for hv in fleet if hv['error']]
        if failed and self.get_option('strict_hypervisors'):
            raise AnsibleParserError('%s: %d of %d hypervisors could not be read (strict_hypervisors): %s'
                                     % (PLUGIN_NAME, len(failed), len(fleet),
                                        '; '.join('%s: %s' % (hv['name'], hv['error']) for hv in failed)))
        if update_cache:
            self._cache[cache_key] = fleet
        self._populate(fleet, cached)

    def _populate(self, fleet, cached):
        suffix = ' (from the inventory cache)' if cached else ''
        for hv in fleet:
            if hv['error']:
                display.warning('%s: hypervisor %s (%s) was not read, its VMs are not listed: %s%s'
                                % (PLUGIN_NAME, hv['name'], hv['uri'], hv['error'], suffix))
            for warning in hv['warnings']:
                display.warning('%s: %s%s' % (PLUGIN_NAME, warning, suffix))
        names, warnings = host_names(fleet, self.get_option('host_name'))
        for warning in warnings:
            display.warning('%s: %s' % (PLUGIN_NAME, warning))
        strict = self.get_option('strict')
        mounted = self.inventory.add_group(GROUP_MOUNTED)
        for hv in fleet:
            hv_group = self.inventory.add_group(hypervisor_group(hv['name']))
            for vm in hv['vms']:
                host = self.inventory.add_host(names[(hv['name'], vm['uuid'])], group=hv_group)
                hostvars = {
                    'aimodel_vm': vm['name'],
                    'aimodel_uuid': vm['uuid'],
                    'aimodel_state': vm['state'],
                    'aimodel_hypervisor': {'name': hv['name'], 'uri': hv['uri']},
                    'aimodel_models': sorted(set(m['model'] for m in vm['mounts'] if m['status'] != STATUS_DETACHED)),
                    'aimodel_mounts': vm['mounts'],
                    'aimodel_record_error': vm['record_error'],
                }
                for key, value in hostvars.items():
                    self.inventory.set_variable(host, key, value)
                if hostvars['aimodel_models']:
                    self.inventory.add_child(mounted, host)
                for model in hostvars['aimodel_models']:
                    self.inventory.add_child(self.inventory.add_group(model_group(model)), host)
                allvars = self.inventory.get_host(host).get_vars()
                self._set_composite_vars(self.get_option('compose'), allvars, host, strict=strict)
                self._add_host_to_composed_groups(self.get_option('groups'), allvars, host, strict=strict)
                self._add_host_to_keyed_groups(self.get_option('keyed_groups'), allvars, host, strict=strict)
