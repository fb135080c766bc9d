# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What docs/awx.md tells an AWX administrator to enter, read from the document itself so that the tests beside this
file (run_job.py, ee_context.py) use exactly what a reader copies: the execution-environment.yml example, the
credential type's input and injector configuration, the survey of "Mount models" and the project's wrapper
playbooks."""

import json
import os
import re

import yaml

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'docs', 'awx.md')

# A fenced block: ```LANG, its text, ```.
_BLOCK = re.compile(r'^```([A-Za-z0-9_-]*)\n(.*?)^```$', re.DOTALL | re.MULTILINE)
# A line of the project's tree: "├── mount_models.yml   # - ansible.builtin.import_playbook: aimodel.kvm.mount_models".
_WRAPPER = re.compile(r'[├└]── (\S+\.yml)\s+# (- ansible\.builtin\.import_playbook: \S+)\s*$')


class DocError(Exception):
    """docs/awx.md lacks a block the tests read, or has it twice."""


# The section of the credential type for the metadata engine (the inventory source's section has one of its own).
CREDENTIAL_SECTION = '3'


def blocks(path=DOC, section=None):
    """The fenced code blocks of the document as (language, text); with section ("3"), those of "## 3. ..." only."""
    with open(path, encoding='utf-8') as handle:
        text = handle.read()
    if section is not None:
        found = re.search(r'^## %s\. .*?(?=^## |\Z)' % re.escape(section), text, re.DOTALL | re.MULTILINE)
        if found is None:
            raise DocError('docs/awx.md has no section %s' % section)
        text = found.group(0)
    return [(m.group(1), m.group(2)) for m in _BLOCK.finditer(text)]


def _one(found, what):
    if len(found) != 1:
        raise DocError('docs/awx.md has %d %s blocks, not one' % (len(found), what))
    return found[0]


def ee_definition(path=DOC):
    """The text of the execution-environment.yml example (the yaml block whose first line names that file)."""
    return _one([text for lang, text in blocks(path)
                 if lang == 'yaml' and text.startswith('# execution-environment.yml\n')], 'execution-environment.yml')


def _yaml_blocks(path, key, section=None):
    found = []
    for lang, text in blocks(path, section):
        if lang != 'yaml':
            continue
        data = yaml.safe_load(text)
        if isinstance(data, dict) and key in data:
            found.append(data)
    return found


def credential_inputs(path=DOC):
    """The credential type's input configuration (fields, required)."""
    return _one(_yaml_blocks(path, 'fields', CREDENTIAL_SECTION), 'input configuration')


def credential_injectors(path=DOC):
    """The credential type's injector configuration (env, and extra_vars if any)."""
    return _one([data for data in _yaml_blocks(path, 'env', CREDENTIAL_SECTION)
                 if set(data) <= {'env', 'extra_vars', 'file'}],
                'injector configuration')


def survey(name, path=DOC):
    """The survey specification called name (a json block)."""
    found = []
    for lang, text in blocks(path):
        if lang == 'json':
            data = json.loads(text)
            if isinstance(data, dict) and data.get('name') == name:
                found.append(data)
    return _one(found, 'survey "%s"' % name)


def wrappers(path=DOC):
    """The project's wrapper playbooks as file name -> their text (from the tree of the project's layout)."""
    out = {}
    for lang, text in blocks(path):
        if lang != '' or 'aimodel-ops/' not in text:
            continue
        for line in text.splitlines():
            match = _WRAPPER.search(line)
            if match:
                out[match.group(1)] = '---\n' + match.group(2) + '\n'
    if not out:
        raise DocError('docs/awx.md has no project tree with wrapper playbooks')
    return out
