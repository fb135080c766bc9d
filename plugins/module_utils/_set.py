# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A VM's whole declared set in one run (vm_model_mounts): every entry checked before anything is touched, then
under one hold of the VM's lock the entries in the order ``ordered`` gives, each planned (``_mounted.plan``,
``_absent.plan``) against the VM as the entry before left it, and applied; a failure rolls back every mount of
the run and says which unmounts stay done.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.aimodel.kvm.plugins.module_utils import _absent
from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _hostpath
from ansible_collections.aimodel.kvm.plugins.module_utils import _mounted
from ansible_collections.aimodel.kvm.plugins.module_utils import _plan
from ansible_collections.aimodel.kvm.plugins.module_utils import _record
from ansible_collections.aimodel.kvm.plugins.module_utils import _spec
from ansible_collections.aimodel.kvm.plugins.module_utils._plan import OperationFailed
from ansible_collections.aimodel.kvm.plugins.module_utils._state import VmState

# The options an entry of mounts has; the others are the run's.
ENTRY_OPTIONS = ('model', 'source_path', 'mount_path', 'read_only', 'state', 'volume')


class Entry:
    """One entry: its index in mounts, the parameters of a one-model run, the desired record and the volume."""

    def __init__(self, index, params, desired, volume):
        self.index = index
        self.params = params
        self.desired = desired
        self.volume = volume

    @property
    def model(self):
        return self.desired['model']

    @property
    def state(self):
        return self.params['state']


def _entry_error(index, exc):
    """A SpecError of an entry, its field named as mounts[N].field (the run's own options keep their names)."""
    field = exc.field or ''
    if field.split('.', 1)[0] not in ENTRY_OPTIONS:
        return exc
    message = str(exc)
    if message.startswith(field + ': '):
        message = message[len(field) + 2:]
    return _spec.SpecError('mounts[%d].%s' % (index, field), message)


def entries(params):
    """The checked entries of mounts (no I/O but the host paths' checks). Raises SpecError naming the entry."""
    out, models, paths = [], {}, {}
    for index, item in enumerate(params['mounts'] or []):
        entry_params = dict((k, v) for k, v in params.items() if k not in ('mounts', 'exclusive'))
        entry_params.update(item)
        if item.get('volume') is None:
            entry_params['volume'] = params['volume']
        try:
            desired, volume = _spec.desired_from_params(entry_params)
            if volume:
                _hostpath.check_volume(volume)
        except _spec.SpecError as exc:
            raise _entry_error(index, exc)
        entry = Entry(index, entry_params, desired, volume)
        if entry.model in models:
            raise _spec.SpecError('mounts[%d].model' % index, 'model %s is already mounts[%d]: one entry per model'
                                  % (entry.model, models[entry.model]))
        models[entry.model] = index
        path = desired.get('mount_path')
        if path is not None:
            if path in paths:
                raise _spec.SpecError('mounts[%d].mount_path' % index, '%s is already the mount path of mounts[%d] (%s)'
                                      % (path, paths[path], out[paths[path]].model))
            paths[path] = index
        out.append(entry)
    return out


def undeclared(state, declared):
    """The models recorded on the VM (live or persistent) that declared does not name, sorted."""
    recorded = set(state.live_records) | set(state.config_records)
    return sorted(m for m in recorded if m not in declared)


class SetRun:
    """The run over one VM's set, under the VM's lock: contexts planned and applied one after the other."""

    def __init__(self, module, domain):
        self.module = module
        self.params = module.params
        self.domain = domain
        self.agent = _guest.Agent(domain, self.params['agent_timeout'], budget=self.params['guest_timeout'])
        self.state = None
        self.applied = []
        self.results = []

    def context(self, entry):
        """The context of an entry; the read model of the one before when that one changed nothing."""
        return _plan.Context(entry.params, entry.desired, entry.volume, self.domain, self.module.run_command,
                             agent=self.agent, state=self.state)

    def one(self, entry):
        """Plan and apply one entry; a failure (of its plan or its steps) rolls back the whole run."""
        try:
            return self._one(entry)
        except Exception as exc:  # pylint: disable=broad-except
            err = OperationFailed(self._failure(entry, exc), field=getattr(exc, 'field', None))
            err.model = entry.model
            raise err

    def _one(self, entry):
        ctx = self.context(entry)
        if entry.state == 'mounted':
            before, after = _mounted.plan(ctx)
        else:
            before, after = _absent.plan(ctx, keep_record=entry.state == 'detached')
        ctx.check_guest_steps()
        if not self.module.check_mode and ctx.plan.steps:
            ctx.plan.apply()
            self.applied.append(ctx)
            # The VM changed: the next entry reads it again.
            self.state = None
        else:
            # Nothing changed (or check mode: nothing is applied, every entry is planned against the VM as read).
            self.state = ctx.state
        result = _plan.result(ctx, before, after, self.module._diff)  # pylint: disable=protected-access
        result['model'] = entry.model
        self.results.append((entry, result, before, after))
        return result

    def _failure(self, entry, exc):
        """The entry's own error, then what the run's earlier entries did and how their rollback went."""
        msg = 'mounts[%d] (model %s): %s' % (entry.index, entry.model, exc) if entry.index is not None else \
            'unmount of %s (not declared): %s' % (entry.model, exc)
        if not self.applied:
            return msg
        rolled, kept, left = [], [], []
        for ctx in reversed(self.applied):
            if ctx.params['state'] != 'mounted':
                left.append('the %s of %s (an unmount is not rolled back: a re-run mounts it again)'
                            % ('detach' if ctx.params['state'] == 'detached' else 'unmount', ctx.desired['model']))
                continue
            ctx.rollback_time()
            r, k, lft = _plan.rollback(ctx.plan.steps)
            rolled.extend(r)
            kept.extend(k)
            left.extend(lft)
        msg += ' Earlier in this run: %s.' % '; '.join(s.text for ctx in self.applied for s in ctx.plan.steps)
        return msg + _plan.rollback_text(rolled, kept, left)


def ordered(state, removals, mounts):
    """The order of a run: the unmounts of models whose recorded mount path a mount of the set takes (they are in
    its way), then the mounts, then the other unmounts. An unmount cannot be rolled back (its model's data stays on
    the volume, and a re-run mounts it again); a failing mount can, so the unmounts wait for the mounts unless a
    mount needs their place."""
    paths = set(e.desired.get('mount_path') for e in mounts)

    def in_the_way(entry):
        record = state.live_records.get(entry.model) or state.config_records.get(entry.model) or {}
        return record.get('mount_path') in paths
    return [e for e in removals if in_the_way(e)] + mounts + [e for e in removals if not in_the_way(e)]


def run(module, entries_):
    """Converge the VM to its set; the module's result."""
    params = module.params
    with _plan.locked_vm(params) as domain:
        if domain is None:
            if any(e.state == 'mounted' for e in entries_):
                raise OperationFailed('VM %s is not defined on this host (%s): check the VM name and that the task runs on '
                                      'the hypervisor that hosts it' % (params['vm'], params['uri']))
            return dict(changed=False, actions=[], mounts=[], unmounted=[],
                        msg='VM %s does not exist on %s: nothing to unmount' % (params['vm'], params['uri']))
        work = SetRun(module, domain)
        work.state = VmState(domain, work.agent)
        removals = [e for e in entries_ if e.state != 'mounted']
        if params['exclusive']:
            declared = set(e.model for e in entries_)
            removals = [Entry(None, dict(params, model=m, state='absent', source_path=None, mount_path=None,
                                         read_only=True, volume=None), {'model': m}, None)
                        for m in undeclared(work.state, declared)] + removals
        unmounted = []
        for entry in ordered(work.state, removals, [e for e in entries_ if e.state == 'mounted']):
            result = work.one(entry)
            if entry.index is None and result['changed']:
                unmounted.append(entry.model)
        mounts = [r for e, r, _b, _a in sorted((x for x in work.results if x[0].index is not None),
                                               key=lambda x: x[0].index)]
        out = dict(changed=any(r['changed'] for _e, r, _b, _a in work.results),
                   actions=['%s: %s' % (e.model, a) for e, r, _b, _a in work.results for a in r['actions']],
                   mounts=mounts, unmounted=unmounted)
        if module._diff:  # pylint: disable=protected-access
            out['diff'] = dict(before=dict((e.model, _record.public(b)) for e, _r, b, _a in work.results if b),
                               after=dict((e.model, _record.public(a)) for e, _r, _b, a in work.results if a))
        return out
