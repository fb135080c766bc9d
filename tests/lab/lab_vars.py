#!/usr/bin/env python
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Print the lab's variables (from $AIMODEL_LAB/lab.env) as JSON, for ansible's -e @file and
integration_config.yml (JSON is valid YAML)."""

import json
import os
import shlex
import sys

KEYS = {
    'LAB_URI': 'lab_uri',
    'LAB_VM': 'lab_vm',
    'LAB_VM2': 'lab_vm2',
    'LAB_PYTHON': 'lab_python',
    'LAB_VOLUME': 'lab_volume_name',
    'LAB_META_URL': 'lab_meta_url',
    'LAB_REDIS_VOLUME': 'lab_redis_volume_name',
    'LAB_REDIS_META_URL': 'lab_redis_meta_url',
    'LAB_REDIS_PASSWORD': 'lab_redis_password',
    'LAB_MODEL': 'lab_model',
    'LAB_MODEL_SOURCE': 'lab_model_source',
    'LAB_MODEL_HOST_DIR': 'lab_model_host_dir',
    'LAB_GUEST_RUN': 'lab_guest_run',
    'AIMODEL_LAB': 'lab_dir',
}


def main():
    lab = os.environ.get('AIMODEL_LAB', '/var/tmp/aimodel-lab')
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(lab, 'lab.env')
    values = {}
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith('#') or '=' not in line:
                continue
            key, _sep, raw = line.partition('=')
            parts = shlex.split(raw)
            values[key.strip()] = parts[0] if parts else ''
    missing = [k for k in KEYS if k not in values]
    if missing:
        sys.exit('lab.env lacks %s' % ', '.join(missing))
    out = dict((name, values[key]) for key, name in KEYS.items())
    out['ansible_python_interpreter'] = values['LAB_PYTHON']
    json.dump(out, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
