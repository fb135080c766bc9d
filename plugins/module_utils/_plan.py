# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The frame of a vm_model_mount run: the VM looked up under its lock, the step list a plan builds, applying it
with rollback, and the result (actions, mount, diff).

A plan (``_mounted.plan``, ``_absent.plan``) reads the VM's read model and adds steps; nothing changes before
``Plan.apply``. A step that fails makes the steps done before it roll back, newest first, and the error says
what was done, rolled back, kept on purpose, or left.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import contextlib

from ansible_collections.aimodel.kvm.plugins.module_utils import _guest
from ansible_collections.aimodel.kvm.plugins.module_utils import _juicefs
from ansible_collections.aimodel.kvm.plugins.module_utils import _libvirt
from ansible_collections.aimodel.kvm.plugins.module_utils import _lock
from ansible_collections.aimodel.kvm.plugins.module_utils import _record
from ansible_collections.aimodel.kvm.plugins.module_utils._errors import AimodelError
from ansible_collections.aimodel.kvm.plugins.module_utils._state import VmState


class OperationFailed(AimodelError):
    """The VM is not in a state the operation can work with, or a step failed (the message tells the rollback)."""


class Step:
    def __init__(self, text, do, undo=None, undo_text=None, unsure=False, guest=False):
        self.text = text
        self.do = do
        self.undo = undo
        self.undo_text = undo_text
        # The step works in the guest, through guest commands (and so does its undo).
        self.guest = guest
        # The step may have done its work when it fails (a guest command whose answer never came, a mount it could
        # not confirm): then its undo runs first in the rollback, and returns False when it found nothing to undo.
        self.unsure = unsure


class Plan:
    """The ordered steps of one run, each with its undo; ``pending`` when the guest part waits for the VM."""

    def __init__(self, vm_name, before_rollback=None):
        self.where = 'VM %s' % vm_name
        self.steps = []
        self.pending = False
        # Called once before a rollback (the guest's time for undoing, see Context).
        self.before_rollback = before_rollback

    def add(self, text, do, undo=None, undo_text=None, unsure=False):
        """A step. ``undo`` None with an ``undo_text``: kept on purpose, and said so after a failure. ``unsure``:
        see Step."""
        self.steps.append(Step(text, do, undo, undo_text, unsure))

    def add_guest(self, text, do, undo=None, undo_text=None, unsure=False):
        """A step in the guest (see ``Context.check_guest_steps``)."""
        self.steps.append(Step(text, do, undo, undo_text, unsure, guest=True))

    def apply(self):
        done = []
        for step in self.steps:
            try:
                step.do()
            except Exception as exc:  # pylint: disable=broad-except
                raise OperationFailed(self._failure(step, done, exc), field=getattr(exc, 'field', None))
            done.append(step)

    def _failure(self, step, done, exc):
        undo = done + [step] if step.unsure and step.undo is not None else done
        if undo and self.before_rollback is not None:
            self.before_rollback()
        rolled, kept, left = rollback(undo)
        msg = '%s: %s failed: %s.' % (self.where, step.text, exc)
        if done:
            msg += ' Done before the failure: %s.' % '; '.join(s.text for s in done)
        return msg + rollback_text(rolled, kept, left)


def rollback_text(rolled, kept, left):
    """What a rollback did, in the words every failure message of the collection uses."""
    msg = ' Rolled back: %s.' % ('; '.join(rolled) if rolled else 'nothing was left to roll back')
    if kept:
        msg += ' Kept on purpose: %s.' % '; '.join(kept)
    if left:
        msg += ' NOT rolled back (fix by hand or re-run): %s.' % '; '.join(left)
    return msg


def rollback(done):
    """Undo the done steps in reverse order: (rolled back, kept on purpose, failed to roll back)."""
    rolled, kept, left = [], [], []
    for step in reversed(done):
        if step.undo is None:
            if step.undo_text:
                kept.append(step.undo_text)
            continue
        try:
            if step.undo() is False:
                continue    # an unsure step that had not done its work
            rolled.append(step.undo_text or 'undo of "%s"' % step.text)
        except Exception as exc:  # pylint: disable=broad-except
            left.append('%s (%s)' % (step.undo_text or step.text, exc))
    return rolled, kept, left


class Context:
    """What a plan works with: the module's parameters, the desired record, the volume's connection settings,
    the domain, its guest agent, the host's volume side, the read model of the VM, and the plan being built.
    ``run_command``: the module's AnsibleModule.run_command, with which the host's side runs its programs."""

    # pylint: disable-next=too-many-arguments,too-many-positional-arguments
    def __init__(self, params, desired, volume, domain, run_command=None, agent=None, state=None):
        self.params = params
        self.desired = desired
        self.volume = volume
        self.domain = domain
        # The guest's time for the whole run is guest_timeout (reading the guest, then every step). A run over a
        # VM's set passes one agent to every model's context (one budget for the run), and the read model of the
        # model before when that one changed nothing (the VM is as it was read).
        self.agent = agent or _guest.Agent(domain, params['agent_timeout'], budget=params['guest_timeout'])
        self.host = _juicefs.Host(run_command)
        self.state = state or VmState(domain, self.agent)
        self.plan = Plan(params['vm'], before_rollback=self.rollback_time)
        self.where = self.plan.where

    def rollback_time(self):
        """Undoing gets one agent_timeout more of the guest's time, once per run (a failed step taking back its
        own guest mount, then the rollback): a guest that used up the run's time is still asked to take back what
        the run did in it, and cannot make the undoing last longer than that."""
        self.agent.allow_rollback(self.params['agent_timeout'])

    def check_guest_steps(self):
        """Before anything changes (in check mode too): a plan with steps in the guest needs an agent that runs
        guest commands; one that has disabled them fails the run here, naming them."""
        steps = [s.text for s in self.plan.steps if s.guest]
        if not steps:
            return
        try:
            self.agent.require(_guest.EXEC_COMMANDS, 'the steps in the guest (%s)' % steps[0])
        except _guest.CommandsDisabled as exc:
            raise OperationFailed('%s: nothing was changed: %s' % (self.where, exc))

    def guest_umount(self, target, force):
        """Unmount in the guest; with ``force`` a busy mount is unmounted lazily."""
        try:
            self.agent.umount(target)
        except _guest.GuestError:
            if not force:
                raise
            self.agent.umount(target, lazy=True)

    def write_records(self, live_records, config_records):
        """Write the live and/or persistent records (None: leave that side alone; empty: remove it)."""
        for records, live, config in ((live_records, True, False), (config_records, False, True)):
            if records is None:
                continue
            self.domain.set_metadata(_record.render(records) if records else None, live, config)

    def detach(self, device_xml, tag, live, config):
        """Detach; a live detach waits until the guest has released the device."""
        if config and not live:
            self.domain.detach(device_xml, False, True)
            return
        self.domain.detach(device_xml, live, config)
        if not _libvirt.wait_device_gone(self.domain, tag, self.params['device_timeout']):
            raise OperationFailed('device %s is still in the live XML %ss after detaching it: the guest did not release '
                                  'it (a guest process may be stuck on a mount whose virtiofsd died; then only a restart '
                                  'of the VM frees the device)' % (tag, self.params['device_timeout']))


@contextlib.contextmanager
def locked_vm(params):
    """The domain of ``params['vm']`` (None when this host has none) under the VM's lock, looked up again under
    the lock (it may have stopped, moved or vanished meanwhile); one libvirt connection for the whole run. When
    this host has no such VM, the lock files of the VMs it no longer has are removed (``_lock.remove_stale``)."""
    conn = _libvirt.connect(params['uri'])
    try:
        domain = conn.lookup(params['vm'])
        if domain is None:
            # The VM is not (or no longer) here: the lock files of VMs gone from this host go too.
            _lock.remove_stale(set(d.uuid for d in conn.domains()))
            yield None
            return
        with _lock.Lock('vm-%s' % domain.uuid, params['lock_timeout'], 'VM %s' % domain.name):
            yield conn.lookup(domain.uuid)
    finally:
        conn.close()


def vm_missing(params, desired):
    """The result of a run on a VM this host does not have: nothing to do for absent, an error for mounted."""
    if params['state'] == 'absent':
        return dict(changed=False, actions=[], mount=dict(vm=params['vm'], model=desired['model'], status='absent'),
                    msg='VM %s does not exist on %s: nothing to unmount' % (params['vm'], params['uri']))
    raise OperationFailed('VM %s is not defined on this host (%s): check the VM name and that the task runs on the '
                          'hypervisor that hosts it' % (params['vm'], params['uri']))


def result(ctx, before, after, diff):
    """The module's result: what was (or would be) done, the mount as recorded, and the diff of the record."""
    plan = ctx.plan
    if after is None:
        mount = dict(_record.public(before) or {'model': ctx.desired['model']}, vm=ctx.domain.name, status='absent')
    elif _record.is_detached(after):
        mount = dict(_record.public(after), vm=ctx.domain.name, status='detached')
    else:
        mount = dict(_record.public(after), vm=ctx.domain.name, status='pending' if plan.pending else 'mounted')
    out = dict(changed=bool(plan.steps), actions=[s.text for s in plan.steps], mount=mount)
    if diff:
        out['diff'] = dict(before=_record.public(before) or {}, after=_record.public(after) or {})
    return out


def scope(live, config):
    """Which of the domain's two configurations a change touches, in words."""
    if live and config:
        return 'live and persistent'
    return 'live' if live else 'persistent'
