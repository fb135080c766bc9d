# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bench-only callback: writes each task's start and end (time.time()), and for a loop each item's end, outcome
and message, as JSON lines to $BENCH_TIMING_FILE."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = '''
name: bench_timing
type: aggregate
short_description: task start and end times for bench/run
description: Writes one JSON line per task (name, start, end, changed, failed, items) to $BENCH_TIMING_FILE.
requirements: [enable it with ANSIBLE_CALLBACKS_ENABLED=bench_timing]
'''

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_timing'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self._tasks = []
        self._current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._current = {'name': task.get_name(), 'start': time.time(), 'end': None, 'changed': False, 'failed': False,
                         'items': []}
        self._tasks.append(self._current)

    def _end(self, result, failed=False):
        if self._current is not None:
            self._current['end'] = time.time()
            self._current['changed'] = self._current['changed'] or bool(result._result.get('changed'))  # pylint: disable=protected-access
            self._current['failed'] = self._current['failed'] or failed

    def _item(self, result, failed):
        if self._current is not None:
            res = result._result  # pylint: disable=protected-access
            self._current['items'].append({'item': res.get('_ansible_item_label', res.get('item')), 'end': time.time(),
                                           'changed': bool(res.get('changed')), 'failed': failed,
                                           'msg': res.get('msg') if failed else None})

    def v2_runner_item_on_ok(self, result):
        self._item(result, False)

    def v2_runner_item_on_failed(self, result):
        self._item(result, True)

    def v2_runner_on_ok(self, result):
        self._end(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._end(result, failed=True)

    def v2_runner_on_skipped(self, result):
        self._end(result)

    def v2_runner_on_unreachable(self, result):
        self._end(result, failed=True)

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get('BENCH_TIMING_FILE')
        if path:
            with open(path, 'a') as handle:
                for task in self._tasks:
                    handle.write(json.dumps(task) + '\n')
