#!/usr/bin/env python
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Print the lab's variables (from $AIMODEL_LAB/lab.env, or the file given as the only argument) as JSON,
for ansible's -e @file and integration_config.yml (JSON is valid YAML). They are read by labkit.py beside it."""

import json
import sys

import labkit


def main():
    try:
        out = labkit.lab_vars(sys.argv[1] if len(sys.argv) > 1 else None)
    except labkit.LabError as exc:
        sys.exit(str(exc))
    json.dump(out, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
