# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bench section "reads": the guest read of one run (mount table + fstab) with cat through guest-exec
against the agent's file commands, alternating, 20 times each."""

import sys
import time

from common import fmt, ratio, say, summary


def run(b):
    """The guest read of a run (mount table + fstab) with cat through guest-exec (before) against the agent's
    file commands (after), alternating, 20 times each, with the collection's own guest code (what it measures)."""
    sys.path.insert(0, b.coll)
    from ansible_collections.aimodel.kvm.plugins.module_utils import _guest, _libvirt  # pylint: disable=import-outside-toplevel
    connection = _libvirt.connect(b.uri)
    try:
        domain = connection.lookup(b.vm)
        before, after, trips = [], [], {}
        for _try in range(20):
            agent_ = _guest.Agent(domain)
            start = time.monotonic()
            _guest.parse_mountinfo(agent_._read_file_with_cat(_guest.MOUNTINFO))  # pylint: disable=protected-access
            agent_._read_file_with_cat(_guest.FSTAB)  # pylint: disable=protected-access
            before.append(time.monotonic() - start)
            trips['before'] = agent_.round_trips
            agent_ = _guest.Agent(domain)
            start = time.monotonic()
            agent_.mounts()
            agent_.read_file(_guest.FSTAB)
            after.append(time.monotonic() - start)
            trips['after'] = agent_.round_trips
    finally:
        connection.close()
    b.results['guest_reads'] = {'cat_via_guest_exec': summary(before), 'agent_file_commands': summary(after),
                                'ratio_after_before': ratio(after, before), 'round_trips': trips}
    say('== 7. Guest read of one run (mount table + fstab), 20 alternating runs ==')
    say('before: cat through guest-exec (2 guest processes)   %s, %d round trips' % (fmt(before), trips['before']))
    say('after:  guest-file-open/read/close (no process)      %s, %d round trips, ratio %.2f'
        % (fmt(after), trips['after'], b.results['guest_reads']['ratio_after_before']))
    say()
