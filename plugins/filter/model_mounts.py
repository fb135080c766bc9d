# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters of the model_mounts role and the playbooks: what the role and the playbooks compute from the inventory
and from the modules' results, as pure functions (no I/O) that unit tests reach.

Each filter reproduces the Jinja it replaces: same messages in the same order, same data shapes.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from collections.abc import Mapping

from ansible.plugins.filter.core import to_bool
from ansible.plugins.test.core import changed as _changed, failed as _failed, skipped as _skipped

REPORT_HEADER = ['HYPERVISOR', 'VM', 'MODEL', 'STATUS', 'MOUNT PATH', 'VOLUME:SOURCE', 'MODE', 'REASONS']
ORPHANS_HEADER = ['HYPERVISOR', 'VM', 'ORPHAN', 'TAG', 'WHERE', 'SOURCE']
NO_ANSWER_HEADER = ['HYPERVISOR', 'NO ANSWER']
NO_RESULT = 'no result: the host did not run the task'
NOTHING_DECLARED = 'nothing declared for this hypervisor'
NO_MOUNTS = '(no mounts recorded)'


def _is_list(value):
    """Jinja's ``is sequence`` and neither ``is string`` nor ``is mapping``."""
    if isinstance(value, (str, bytes, Mapping)):
        return False
    try:
        len(value)
        value.__getitem__  # pylint: disable=pointless-statement
    except (TypeError, AttributeError):
        return False
    return True


def _entry(entry):
    """A VM's entry as a mapping: a model name is {'model': name}."""
    return entry if isinstance(entry, Mapping) else {'model': entry}


def _length(value):
    try:
        return len(value)
    except TypeError:
        return 0


def model_mounts_limit(value):
    """model_mounts_vms_limit (a list, or a comma-separated string) as a list of names, trimmed, empty ones dropped."""
    if value is None:
        return []
    items = value.split(',') if isinstance(value, str) else value
    return [name for name in (str(item).strip() for item in items) if name]


def model_mounts_problems(vms, catalog, volumes):
    """Every problem of model_mounts_vms, model_mounts_catalog and model_mounts_volumes, as messages."""
    problems = []
    for vm, entries in vms.items():
        if not _is_list(entries):
            problems.append('model_mounts_vms[%s] must be a list of models' % (vm,))
            continue
        seen = []
        for entry in entries:
            model = entry.get('model', '') if isinstance(entry, Mapping) else entry
            if not isinstance(model, str) or len(model) == 0:
                problems.append('an entry of model_mounts_vms[%s] has no model name' % (vm,))
            elif model not in catalog:
                problems.append('model %s of VM %s is not in model_mounts_catalog' % (model, vm))
            elif model in seen:
                problems.append('model %s is declared twice for VM %s' % (model, vm))
            seen.append(model)
    for model, item in catalog.items():
        if not isinstance(item, Mapping) or _length(item.get('source_path', '')) == 0:
            problems.append('model_mounts_catalog[%s] needs a source_path' % (model,))
            continue
        try:
            known = item.get('volume', '') in volumes
        except TypeError:  # an unhashable volume (a list, a dict) is no volume name
            known = False
        if not known:
            problems.append('the volume of model %s (%s) is not in model_mounts_volumes' % (model, item.get('volume', 'none')))
    return problems


def model_mounts_vm_names(vms, limit=None):
    """The names of the declared VMs that the limit keeps (all when the limit is empty), in declaration order."""
    return [vm for vm in vms if not limit or vm in limit]


def model_mounts_declared(vms, catalog, limit=None, read_only=True):
    """One mount per declared model of the VMs the limit keeps: vm, model, volume, source_path, mount_path, read_only.

    mount_path: the entry's, else the catalog's, else None; read_only: the entry's, else the catalog's, else
    read_only (model_mounts_read_only). The entries must have passed model_mounts_problems."""
    declared = []
    for vm in model_mounts_vm_names(vms, limit):
        for entry in vms[vm]:
            entry = _entry(entry)
            item = catalog[entry['model']]
            declared.append({
                'vm': vm,
                'model': entry['model'],
                'volume': item['volume'],
                'source_path': item['source_path'],
                'mount_path': entry.get('mount_path', item.get('mount_path')),
                'read_only': to_bool(entry.get('read_only', item.get('read_only', read_only))),
            })
    return declared


def model_mounts_volume_args(volume, volumes, mount_root='', env_volume=None, keys=()):
    """The volume option of vm_model_mount for the volume named volume: the name, mount_root when not empty, what the
    environment gives (env_volume), then the inventory volume's keys (in keys) whose value is not None."""
    args = {'name': volume}
    if _length(mount_root) > 0:
        args['mount_root'] = mount_root
    args.update(env_volume or {})
    inventory = (volumes or {}).get(volume) or {}
    args.update((key, value) for key, value in inventory.items() if key in keys and value is not None)
    return args


def model_mounts_by_vm(declared, vm_names):
    """The declared mounts grouped per VM: vm, and mounts (model, volume - its name -, source_path, mount_path,
    read_only), for every VM of vm_names in their order, a VM that declares nothing with an empty list. The volumes
    stay names here: these are loop items, which the registered results repeat (see model_mounts_mount_args)."""
    return [{'vm': vm, 'mounts': [dict((k, m[k]) for k in ('model', 'volume', 'source_path', 'mount_path', 'read_only'))
                                  for m in declared if m['vm'] == vm]} for vm in vm_names]


def model_mounts_mount_args(mounts, volumes, mount_root='', env_volume=None, keys=()):  # pylint: disable=too-many-arguments,too-many-positional-arguments
    """The mounts option of vm_model_mounts for one VM's mounts of model_mounts_by_vm: each volume name replaced by
    the volume option model_mounts_volume_args gives (with its secrets, which only the module sees)."""
    return [dict(m, volume=model_mounts_volume_args(m['volume'], volumes, mount_root, env_volume, keys)) for m in mounts]


def _declared_models(declared, vm):
    return [mount['model'] for mount in declared if mount['vm'] == vm]


def model_mounts_undeclared(declared, scope, declared_info=None, host_info=None, limit=None):
    """The recorded mounts that declared does not hold, as vm, model, mount_path.

    scope 'declared': from the results of vm_model_mount_info looped over the declared VM names (declared_info), named
    by the VM as declared; any other scope: from one vm_model_mount_info result of the whole hypervisor (host_info),
    only the VMs the limit keeps."""
    undeclared = []
    if scope == 'declared':
        for result in (declared_info or {}).get('results', []):
            models = _declared_models(declared, result['item'])
            undeclared.extend({'vm': result['item'], 'model': m['model'], 'mount_path': m['mount_path']}
                              for m in result.get('mounts', []) if m['model'] not in models)
    else:
        for m in (host_info or {}).get('mounts', []):
            if (not limit or m['vm'] in limit) and m['model'] not in _declared_models(declared, m['vm']):
                undeclared.append({'vm': m['vm'], 'model': m['model'], 'mount_path': m['mount_path']})
    return undeclared


def _results(registered):
    if not isinstance(registered, Mapping):
        return []
    return [r for r in registered.get('results', []) if not _skipped(r)]


ROLLED_BACK = 'not converged: the run of its set failed and was rolled back'


def _short(msg):
    msg = ' '.join(str(msg).split())
    return msg if len(msg) <= 300 else msg[:297] + '...'


def _per_model(registered):
    """(mount results, unmount results, errors by VM) per model from the results of vm_model_mounts looped over the
    VMs (item: vm and mounts), in the shape of vm_model_mount's loop (item: vm and model); results of that shape
    pass as they are. A failed run of a set fails the model it names (all of the set when it names none)."""
    mounted, removed, errors = [], [], {}
    for result in _results(registered):
        item = result.get('item')
        if isinstance(item, str):
            vm, declared = item, []       # a loop over VM names (their sets are empty)
        elif isinstance(item, Mapping) and 'mounts' in item and 'model' not in item:
            vm, declared = item.get('vm'), [m.get('model') for m in item['mounts']]
        else:
            mounted.append(result)
            continue
        if _failed(result):
            if result.get('model'):
                mounted.append({'item': {'vm': vm, 'model': result['model']}, 'failed': True, 'msg': result.get('msg')})
                if declared != [result['model']]:
                    errors.setdefault(vm, []).append(ROLLED_BACK)
            else:
                # The run failed before any model (its input, the connection, the lock): its message says why.
                mounted.extend({'item': {'vm': vm, 'model': m}, 'failed': True} for m in declared)
                errors.setdefault(vm, []).append(_short(result.get('msg') or 'failed'))
            continue
        mounted.extend({'item': {'vm': vm, 'model': e.get('model')}, 'changed': e.get('changed', False),
                        'mount': e.get('mount')} for e in result.get('mounts', []) if e.get('mount', {}).get('status') != 'absent')
        removed.extend({'item': {'vm': vm, 'model': e.get('model')}, 'changed': e.get('changed', False)}
                       for e in result.get('mounts', []) if e.get('mount', {}).get('status') == 'absent')
        removed.extend({'item': {'vm': vm, 'model': m}, 'changed': True} for m in result.get('unmounted', []))
    return mounted, removed, errors


def _item(result, key):
    item = result.get('item')
    return item.get(key) if isinstance(item, Mapping) else None


def _unique(values):
    out = []
    for value in values:
        if value not in out:
            out.append(value)
    return out


NOT_CONVERGED = 'not converged: the exclusive step failed, the declared models were not mounted'


def _failed_reads(records):
    """(VM name, message) of each failed read of the mount records in the exclusive step; the VM name is None for the
    read of the whole hypervisor. records: registered results, of a loop over the VM names or of one task."""
    failed = []
    for registered in records or []:
        if not isinstance(registered, Mapping):
            continue
        for result in registered.get('results', []) if 'results' in registered else [registered]:
            if isinstance(result, Mapping) and _failed(result):
                item = result.get('item')
                failed.append((item if isinstance(item, str) else None, str(result.get('msg', 'failed'))))
    return failed


def model_mounts_summary(mounted, unmounted=None, vm_names=None, records=None):
    """Per VM the models mounted, unmounted, unchanged, pending and failed, and the errors that are no model's, from
    the registered results of the mount loop (mounted: vm_model_mounts per VM, or vm_model_mount per model), the
    unmount loop (unmounted: the same shapes) and the reads of the mount records of the exclusive step (records: a
    list of registered results); skipped results do not count. The VMs: vm_names, then the VMs that had a model
    unmounted. A VM whose set failed has the model that failed, and the error ROLLED_BACK when it had others.

    A failed read of a VM's records is that VM's error (a failed read of the whole hypervisor: every VM's). When the
    exclusive step failed (a read or an unmount), the mount loop did not run: every VM without a failure of its own
    gets the error NOT_CONVERGED."""
    mounted, removed_here, set_errors = _per_model(mounted)
    removed_there, removed_more, more_errors = _per_model(unmounted)
    removed = removed_here + removed_there + removed_more
    vms = _unique(list(vm_names or []) + [_item(r, 'vm') for r in removed])
    errors = dict((vm, []) for vm in vms)
    for extra in (set_errors, more_errors):
        for vm, msgs in extra.items():
            errors.setdefault(vm, []).extend(msgs)
    reads = _failed_reads(records)
    for vm, msg in reads:
        for name in [vm] if vm is not None else vms:
            errors.setdefault(name, []).append('reading its mount records failed: %s' % msg)
    vms = _unique(vms + list(errors))
    summary = {}
    for vm in vms:
        m = [r for r in mounted if _item(r, 'vm') == vm]
        r = [r for r in removed if _item(r, 'vm') == vm]
        summary[vm] = {
            'mounted': [_item(x, 'model') for x in m if not _failed(x) and _changed(x)],
            'unmounted': [_item(x, 'model') for x in r if not _failed(x) and _changed(x)],
            'unchanged': [_item(x, 'model') for x in m if not _failed(x) and not _changed(x)],
            'pending': [_item(x, 'model') for x in m
                        if isinstance(x.get('mount'), Mapping) and x['mount'].get('status') == 'pending'],
            'failed': [_item(x, 'model') for x in m + r if _failed(x)],
            'errors': errors[vm],
        }
    if reads or any(_failed(x) for x in removed) or more_errors:
        for vm, s in summary.items():
            if not s['failed'] and not s['errors']:
                s['errors'].append(NOT_CONVERGED)
    return summary


def _join(values):
    return ', '.join(str(v) for v in values)


def model_mounts_summary_lines(summary, check_mode=False):
    """One line per VM of model_mounts_summary, or one line saying that nothing is declared."""
    lines = []
    for vm, s in summary.items():
        line = '%s%s: mounted [%s]; unmounted [%s]; unchanged [%s]' % (
            vm, ' (check mode)' if check_mode else '', _join(s['mounted']), _join(s['unmounted']), _join(s['unchanged']))
        if s.get('pending'):
            line += '; pending [%s]' % _join(s['pending'])
        if s.get('failed'):
            line += '; FAILED [%s]' % _join(s['failed'])
        if s.get('errors'):
            line += '; FAILED (%s)' % '; '.join(str(e) for e in s['errors'])
        lines.append(line)
    return lines or [NOTHING_DECLARED]


def _table_lines(table):
    widths = [max(len(str(row[col])) for row in table) for col in range(len(table[0]))]
    return ['  '.join(str(cell).ljust(widths[col]) for col, cell in enumerate(row)).strip() for row in table]


def _no_answer(info):
    """Why a host's registered result holds no answer, in one line."""
    if not isinstance(info, Mapping) or not info:
        return NO_RESULT
    msg = ' '.join(str(info.get('msg') or 'no mounts in the result').split())
    return ('unreachable: ' if info.get('unreachable') else '') + (msg if len(msg) <= 300 else msg[:297] + '...')


def model_mounts_report_lines(hosts, hostvars, var='aimodel_report_info'):
    """The report table: one row per mount recorded on the hypervisors (hosts; each one's vm_model_mount_info result
    in hostvars[host][var]), a row 'unreachable' for a host without an answer, then the orphans table if any, then the
    table of the hosts without an answer and why (the message of their result) if any."""
    rows = []
    orphans = []
    silent = []
    for host in hosts:
        host_vars = hostvars[host]
        info = host_vars[var] if var in host_vars else {}
        if not isinstance(info, Mapping) or 'mounts' not in info:
            rows.append([host, '-', '-', 'unreachable', '-', '-', '-', 'no answer from the hypervisor'])
            silent.append([host, _no_answer(info)])
            info = {}
        for m in info.get('mounts') or []:
            rows.append([host, m['vm'], m['model'], m['status'], m['mount_path'], '%s:%s' % (m['volume'], m['source_path']),
                         'ro' if m['read_only'] else 'rw', ','.join(str(x) for x in m['reasons']) or '-'])
        for o in info.get('orphans') or []:
            orphans.append([host, o.get('vm', '-'), o.get('kind', '-'), o.get('tag', '-'), o.get('where', '-'), o.get('source', '-')])
    lines = _table_lines([REPORT_HEADER] + sorted(rows))
    if not rows:
        lines.append(NO_MOUNTS)
    if orphans:
        lines.append('')
        lines.extend(_table_lines([ORPHANS_HEADER] + sorted(orphans)))
    if silent:
        lines.append('')
        lines.extend(_table_lines([NO_ANSWER_HEADER] + sorted(silent)))
    return lines


class FilterModule(object):
    """The filters of the model_mounts role and the playbooks."""

    def filters(self):
        return {
            'model_mounts_limit': model_mounts_limit,
            'model_mounts_problems': model_mounts_problems,
            'model_mounts_vm_names': model_mounts_vm_names,
            'model_mounts_declared': model_mounts_declared,
            'model_mounts_volume_args': model_mounts_volume_args,
            'model_mounts_by_vm': model_mounts_by_vm,
            'model_mounts_mount_args': model_mounts_mount_args,
            'model_mounts_undeclared': model_mounts_undeclared,
            'model_mounts_summary': model_mounts_summary,
            'model_mounts_summary_lines': model_mounts_summary_lines,
            'model_mounts_report_lines': model_mounts_report_lines,
        }
