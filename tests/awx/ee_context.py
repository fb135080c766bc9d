#!/usr/bin/env python
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The execution environment example of docs/awx.md makes a build context (run by tests/local/run, no lab needed).

  tests/awx/ee_context.py [--tarball FILE] [--keep DIR]

Run it with a python that has ansible-builder and ansible-core (the lab venv's). The execution-environment.yml is
the yaml block of docs/awx.md, as a reader copies it; only its aimodel.kvm entry is pointed at this tree's tarball
(built here with ansible-galaxy collection build, or FILE), copied into the context with additional_build_files, as
the doc's comment says ("or a git URL / tarball of this collection"): the build of the context runs offline. Then
`ansible-builder create --file execution-environment.yml --context DIR --output-filename Containerfile` (create only:
no container engine is needed) and the context is checked:
- Containerfile present, installing the doc's ansible-core pin, which allows only ansible-core lines that
  meta/runtime.yml (requires_ansible) claims, and ansible-runner;
- _build/requirements.yml holds the collection entry, and the tarball it names is in the context;
- the galaxy stage's command (ansible-galaxy collection install -r requirements.yml, run in _build/ as the
  Containerfile runs it in /build) installs aimodel.kvm of galaxy.yml's version from it, offline;
- the builder stage's introspection (the context's own _build/scripts/introspect.py) of the installed collection
  asks for no Python and no system package (meta/execution-environment.yml points at the empty EE lists; without it
  the hypervisors' libvirt-python would be built into the EE).
Prints each check as PASS or FAIL; exits 1 when one failed.
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import awx_doc  # noqa: E402 pylint: disable=wrong-import-position

BIN = os.path.dirname(sys.executable)
# The ansible-core lines looked at for the pin (the ones tests/run tests, and the next).
LINES = ['2.%d' % minor for minor in range(15, 25)]


def tool(name):
    path = os.path.join(BIN, name)
    return path if os.path.exists(path) else (shutil.which(name) or name)


def run(argv, cwd=None, env=None):
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print('$ %s\n%s%s' % (' '.join(argv), proc.stdout, proc.stderr))
    return proc


def allowed_lines(specifier):
    """The ansible-core lines X.Y of which the specifier allows some release."""
    return [line for line in LINES if any(Version('%s.%d' % (line, patch)) in specifier for patch in range(0, 100))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--tarball', help='the collection tarball (default: built from this tree)')
    parser.add_argument('--keep', help='make the context in this directory and keep it')
    args = parser.parse_args()
    failed = []

    def check(name, ok, detail=''):
        print('%s  %s%s' % ('PASS' if ok else 'FAIL', name, (': ' + detail) if detail else ''), flush=True)
        if not ok:
            failed.append(name)
        return ok

    with open(os.path.join(ROOT, 'galaxy.yml'), encoding='utf-8') as handle:
        galaxy = yaml.safe_load(handle)
    with open(os.path.join(ROOT, 'meta', 'runtime.yml'), encoding='utf-8') as handle:
        claimed = SpecifierSet(yaml.safe_load(handle)['requires_ansible'])
    work = args.keep or tempfile.mkdtemp(prefix='aimodel-ee-')
    os.makedirs(work, exist_ok=True)
    try:
        tarball = args.tarball
        if not tarball:
            proc = run([tool('ansible-galaxy'), 'collection', 'build', ROOT, '--output-path', work, '--force'])
            tarball = os.path.join(work, '%s-%s-%s.tar.gz' % (galaxy['namespace'], galaxy['name'], galaxy['version']))
            if not check('ansible-galaxy collection build', proc.returncode == 0 and os.path.isfile(tarball), tarball):
                return 1
        tarball = os.path.abspath(tarball)
        fqcn = '%s.%s' % (galaxy['namespace'], galaxy['name'])

        text = awx_doc.ee_definition()
        definition = yaml.safe_load(text)
        entries = definition['dependencies']['galaxy']['collections']
        ours = [e for e in entries if e.get('name') == fqcn]
        if not check('docs/awx.md: execution-environment.yml (v%s) installs %s from Galaxy' % (definition.get('version'), fqcn),
                     definition.get('version') == 3 and len(ours) == 1):
            return 1
        # The tarball in the context (additional_build_files copies it to _build/collections/), named relative to
        # _build, where the galaxy stage runs ansible-galaxy.
        source = 'collections/' + os.path.basename(tarball)
        ours[0].clear()
        ours[0].update(name=source, type='file')
        definition.setdefault('additional_build_files', []).append({'src': tarball, 'dest': 'collections'})
        ee_file = os.path.join(work, 'execution-environment.yml')
        with open(ee_file, 'w', encoding='utf-8') as handle:
            yaml.safe_dump(definition, handle, sort_keys=False)
        context = os.path.join(work, 'context')
        shutil.rmtree(context, ignore_errors=True)
        proc = run([tool('ansible-builder'), 'create', '--file', ee_file, '--context', context,
                    '--output-filename', 'Containerfile'])
        containerfile = os.path.join(context, 'Containerfile')
        if not check('ansible-builder create', proc.returncode == 0 and os.path.isfile(containerfile),
                     '%s (%s)' % (context, ', '.join(sorted(os.listdir(context))) if os.path.isdir(context) else 'none')):
            return 1
        with open(containerfile, encoding='utf-8') as handle:
            content = handle.read()

        pin = definition['dependencies']['ansible_core']['package_pip']
        requirement = Requirement(pin)
        lines = allowed_lines(requirement.specifier)
        refs = [line for line in content.splitlines() if line.startswith('ARG ANSIBLE_INSTALL_REFS=')]
        check('Containerfile installs %s and ansible-runner' % pin,
              requirement.name == 'ansible-core' and len(refs) == 1 and pin in refs[0] and 'ansible-runner' in refs[0],
              refs[0] if refs else 'no ANSIBLE_INSTALL_REFS')
        check('the pin allows only lines that meta/runtime.yml claims (%s)' % claimed,
              bool(lines) and all(Version(line + '.0') in claimed for line in lines), 'lines %s' % ', '.join(lines))

        build = os.path.join(context, '_build')
        with open(os.path.join(build, 'requirements.yml'), encoding='utf-8') as handle:
            requirements = yaml.safe_load(handle)
        in_context = os.path.join(build, source)
        check('_build/requirements.yml names the collection, its tarball in the context',
              {'name': source, 'type': 'file'} in requirements.get('collections', []) and os.path.isfile(in_context),
              '%s; %s' % (requirements.get('collections'), os.path.relpath(in_context, work)))

        # The galaxy stage, offline: ansible-galaxy collection install -r requirements.yml in _build.
        installed = os.path.join(work, 'installed')
        # As in the image: no collection installed anywhere else (ansible-galaxy skips one it finds on its paths).
        env = dict(((k, v) for k, v in os.environ.items() if not k.startswith('ANSIBLE_COLLECTIONS_PATH')),
                   ANSIBLE_GALAXY_DISABLE_GPG_VERIFY='1', ANSIBLE_COLLECTIONS_PATH=installed)
        proc = run([tool('ansible-galaxy'), 'collection', 'install', '-r', 'requirements.yml',
                    '--collections-path', installed], cwd=build, env=env)
        manifest = os.path.join(installed, 'ansible_collections', galaxy['namespace'], galaxy['name'], 'MANIFEST.json')
        version = yaml.safe_load(open(manifest, encoding='utf-8'))['collection_info']['version'] if os.path.isfile(manifest) else None
        if not check('the galaxy stage installs %s %s from the context, offline' % (fqcn, galaxy['version']),
                     proc.returncode == 0 and version == galaxy['version'], 'installed %s' % (version or 'nothing')):
            print(proc.stdout + proc.stderr)
            return 1
        check('Containerfile runs that stage', 'ansible-galaxy collection install' in content and '-r requirements.yml' in content
              and 'COPY _build /build' in content)

        # The builder stage's introspection of the installed collection (it prints what the EE would install).
        proc = run([sys.executable, os.path.join(build, 'scripts', 'introspect.py'), 'introspect', installed])
        found = yaml.safe_load(proc.stdout) if proc.returncode == 0 else None
        check('the introspection asks for no Python and no system package (meta/execution-environment.yml)',
              isinstance(found, dict) and found.get('python') == [] and found.get('system') == [],
              'python %s, system %s' % ((found or {}).get('python'), (found or {}).get('system')))
        files = sorted(os.path.relpath(p, context) for p in glob.glob(os.path.join(context, '**'), recursive=True)
                       if os.path.isfile(p))
        print('context: %s' % ', '.join(files))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print('%d check(s) failed: %s' % (len(failed), '; '.join(failed)) if failed else 'all checks passed')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
