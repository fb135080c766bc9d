# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Write every task result of a run, in order, as JSON to the file named by AIMODEL_RESULTS_FILE."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # pylint: disable=invalid-name

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r'''
name: results_file
type: aggregate
short_description: Task results as JSON into a file (for the reliability suite)
description:
  - Writes the result of every task, in order, to the file named by the environment variable AIMODEL_RESULTS_FILE.
options: {}
'''


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'results_file'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self.results = []

    def _keep(self, result, failed=False):
        data = dict(result._result)  # pylint: disable=protected-access
        if failed:
            data['failed'] = True
        data['_task'] = result.task_name
        self.results.append(data)

    def v2_runner_on_ok(self, result):
        self._keep(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._keep(result, failed=True)

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get('AIMODEL_RESULTS_FILE')
        if path:
            with open(path, 'w') as handle:
                json.dump(self.results, handle, default=str)
