#!/usr/bin/env python
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The "Mount models" job template of docs/awx.md, run as AWX runs a job: through ansible-runner, with a private
data directory laid out as AWX lays it out, against the lab (run by `bash tests/run`, stage "awx").

  tests/awx/run_job.py [--lab-env FILE] [--collections DIR] [--keep]

Run it with the lab venv's python (ansible-runner, ansible-core and the libvirt binding are there). The collection
under test is the tree this script belongs to: it must lie at DIR/ansible_collections/aimodel/kvm, DIR being given
by --collections or found above the tree (tests/run runs it from $AIMODEL_LAB/ansible_collections/aimodel/kvm);
the jobs get ANSIBLE_COLLECTIONS_PATH=DIR, as an execution environment has the collection installed.

Each job gets a private data directory of its own (AWX makes one per job):
  inventory/hosts    an executable script printing the inventory as JSON, as AWX writes it: the group hypervisors
                     holding the lab's hypervisor (localhost, connection local), the volume labvol-redis of the
                     lab without meta_url/meta_password (the credential gives them), the catalog with this test's
                     model, and as host variables the lab's second VM (LAB_VM2) with that model;
  env/extravars      the survey's answers as AWX passes them (strings), from the survey of docs/awx.md;
  env/envvars        what the credential type of docs/awx.md injects (its injector configuration rendered with
                     the lab's Redis URL, the Redis password and the lab's URI), and ANSIBLE_COLLECTIONS_PATH;
  project/           the wrapper playbooks of the project tree of docs/awx.md (import_playbook: aimodel.kvm.*).
ansible-runner runs with suppress_env_files as AWX does (AWX_RUNNER_OMIT_ENV_FILES); the stdout file is kept (AWX
omits it) so that it can be searched too.

The jobs: mount (the model mounted), mount again (a no-op), unmount (unmount_models, its survey variables), then
the info module ad hoc through ansible-runner. Checks, each printed as PASS or FAIL: the status and rc of each job;
the role ran from the tree under test; the model's files have the same sha256 inside the guest (through the guest
agent, tests/lab/guest_run.py) as on the host; the mount task's events carry the password only as
VALUE_SPECIFIED_IN_NO_LOG_PARAMETER; no event of a no_log result is left uncensored; the password (raw, %-encoded,
or any quarter of it) is in no job event and in no file under the artifacts directory (ansible-runner's own record
of the job's environment, artifacts/IDENT/command, is the one place allowed to hold the injected variable); the
second run changes nothing; after the unmount nothing of the model is left (no record, no guest mount, and with no
other record on the VM no device of ours and no virtiofs mount). The host's mount of the volume under this test's
mount root is unmounted at the end. Exits 1 when a check failed, 2 when the lab is missing (no lab.env, or LAB_VM2 not
running).
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from urllib.parse import quote, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'lab'))
sys.path.insert(0, HERE)

import awx_doc  # noqa: E402 pylint: disable=wrong-import-position
import labkit  # noqa: E402 pylint: disable=wrong-import-position

CENSORED = "the output has been hidden due to the fact that 'no_log: true' was specified for this result"
NO_LOG_VALUE = 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
MOUNT_ACTION = 'aimodel.kvm.vm_model_mounts'
# This test's model and where it goes in the guest; its own host mount root of the volume.
MODEL = 'awx-minilm'
MOUNT_PATH = '/mnt/awx/minilm'
JOB_TIMEOUT = 900
# The credential variables ansible-runner's record of the environment (artifacts/IDENT/command) may hold.
CREDENTIAL_ENV = ('AIMODEL_META_URL', 'AIMODEL_META_PASSWORD')


class Checks:
    """PASS/FAIL lines, and whether any failed."""

    def __init__(self):
        self.failed = []

    def check(self, name, ok, detail=''):
        print('%s  %s%s' % ('PASS' if ok else 'FAIL', name, (': ' + detail) if detail else ''), flush=True)
        if not ok:
            self.failed.append(name)
        return ok


def collections_dir(given):
    """DIR holding ansible_collections/aimodel/kvm = the tree under test."""
    if given:
        found = os.path.abspath(given)
    else:
        parts = os.path.realpath(ROOT).split(os.sep)
        found = os.sep.join(parts[:-3]) if parts[-3:-2] == ['ansible_collections'] else None
    if not found or os.path.realpath(os.path.join(found, 'ansible_collections', 'aimodel', 'kvm')) != os.path.realpath(ROOT):
        sys.exit('run_job.py: the tree %s is not at DIR/ansible_collections/aimodel/kvm (give --collections DIR)' % ROOT)
    return found


def render_injectors(injectors, inputs):
    """The credential's env and extra_vars as AWX renders them (Jinja2 in a sandbox; an undefined input is '')."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment  # pylint: disable=import-outside-toplevel
    env = ImmutableSandboxedEnvironment()

    def render(values):
        return dict((key, env.from_string(str(value)).render(**inputs)) for key, value in (values or {}).items())
    return render(injectors.get('env')), render(injectors.get('extra_vars'))


def credential(lab):
    """(envvars, extra_vars) of a credential of the type of docs/awx.md for the lab's Redis volume."""
    fields = awx_doc.credential_inputs()
    inputs = dict((f['id'], f['default']) for f in fields['fields'] if 'default' in f)
    inputs.update(meta_url=lab['lab_redis_meta_url'], meta_password=lab['lab_redis_password'], libvirt_uri=lab['lab_uri'])
    known = set(f['id'] for f in fields['fields'])
    if not set(inputs) <= known or not set(fields.get('required', [])) <= set(inputs):
        sys.exit('run_job.py: the credential inputs %s do not fit the input configuration of docs/awx.md' % sorted(inputs))
    return render_injectors(awx_doc.credential_injectors(), inputs)


def write(path, text, mode=0o600):
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write(text)
    os.chmod(path, mode)


def inventory(lab, mount_root):
    """The inventory as AWX's inventory script prints it (groups with vars, _meta.hostvars)."""
    return {
        'all': {'children': ['hypervisors', 'ungrouped']},
        'hypervisors': {
            'hosts': ['localhost'],
            'vars': {
                'model_mounts_mount_root': mount_root,
                # meta_url and meta_password come from the credential (AIMODEL_META_URL, AIMODEL_META_PASSWORD).
                'model_mounts_volumes': {lab['lab_redis_volume_name']: {}},
                'model_mounts_catalog': {MODEL: {'volume': lab['lab_redis_volume_name'],
                                                 'source_path': lab['lab_model_source']}},
            },
        },
        'ungrouped': {'hosts': []},
        '_meta': {'hostvars': {'localhost': {
            'ansible_connection': 'local',
            # The execution environment's python; it has the libvirt binding here (the hypervisor is this machine).
            'ansible_python_interpreter': sys.executable,
            'model_mounts_vms': {lab['lab_vm2']: [{'model': MODEL, 'mount_path': MOUNT_PATH}]},
        }}},
    }


def private_data_dir(work, ident, lab, mount_root, extravars, envvars):
    pdd = os.path.join(work, ident)
    write(os.path.join(pdd, 'inventory', 'hosts'),
          '#!%s\n# -*- coding: utf-8 -*-\nprint(%r)\n' % (sys.executable, json.dumps(inventory(lab, mount_root))), 0o700)
    write(os.path.join(pdd, 'env', 'extravars'), json.dumps(extravars, indent=2) + '\n')
    write(os.path.join(pdd, 'env', 'envvars'), json.dumps(envvars, indent=2) + '\n')
    for name, text in awx_doc.wrappers().items():
        write(os.path.join(pdd, 'project', name), text, 0o644)
    return pdd


def run(pdd, ident, **kwargs):
    import ansible_runner  # pylint: disable=import-outside-toplevel
    t0 = time.time()
    result = ansible_runner.run(private_data_dir=pdd, ident=ident, quiet=True, suppress_env_files=True,
                                timeout=JOB_TIMEOUT, **kwargs)
    events = list(result.events)
    changed = sum((result.stats or {}).get('changed', {}).values())
    print('---- job %s: status %s, rc %s, %d events, changed %d, %.0f s'
          % (ident, result.status, result.rc, len(events), changed, time.time() - t0), flush=True)
    return result, events, changed


def res_of(event):
    return (event.get('event_data') or {}).get('res') or {}


def module_args(event):
    return (res_of(event).get('invocation') or {}).get('module_args') or {}


def results_of(event):
    res = res_of(event)
    return [res] + [r for r in res.get('results', []) if isinstance(r, dict)]


def failed_tasks(events):
    return ['%s: %s' % (e['event_data'].get('task'), res_of(e).get('msg', res_of(e).get('censored', '')))
            for e in events if e.get('event') in ('runner_on_failed', 'runner_item_on_failed', 'runner_on_unreachable')]


def summary_lines(events):
    for e in events:
        if (e.get('event_data') or {}).get('task') == 'Show the summary' and e.get('event') == 'runner_on_ok':
            msg = res_of(e).get('msg')
            return msg if isinstance(msg, list) else [msg]
    return []


def check_job(checks, name, result, events):
    ok = checks.check('%s: status successful, rc 0' % name, result.status == 'successful' and result.rc == 0,
                      '%s, rc %s' % (result.status, result.rc))
    if not ok:
        for line in failed_tasks(events):
            print('      failed: ' + line)
    return ok


def check_from_tree(checks, name, events):
    """The tasks ran from the tree under test (the collection through ANSIBLE_COLLECTIONS_PATH), the role's among them."""
    paths = sorted(set(e['event_data']['task_path'].rsplit(':', 1)[0] for e in events
                       if (e.get('event_data') or {}).get('task_path')))
    tree = os.path.realpath(ROOT) + os.sep
    role = os.path.join(tree, 'roles', 'model_mounts', 'tasks') + os.sep
    checks.check('%s: the tasks ran from the tree under test, roles/model_mounts among them' % name,
                 all(os.path.realpath(p).startswith(tree) for p in paths)
                 and any(os.path.realpath(p).startswith(role) for p in paths),
                 ', '.join(os.path.relpath(p, ROOT) if os.path.realpath(p).startswith(tree) else p for p in paths))


def shown(value):
    """A meta_password of an event as this test prints it: the masked value, else never the value itself."""
    if value is None or value == NO_LOG_VALUE:
        return value
    return '<NOT MASKED: %d characters>' % len(str(value))


def check_masked(checks, name, events, models, meta_url):
    """The mount task's item results show the password option as masked; no no_log result is left uncensored."""
    mounts = [e for e in events if e.get('event') in ('runner_item_on_ok', 'runner_item_on_failed')
              and e['event_data'].get('resolved_action', e['event_data'].get('task_action')) == MOUNT_ACTION]
    # One item per VM; its mounts, one per model, each with its volume.
    volumes = [m.get('volume') or {} for e in mounts for m in module_args(e).get('mounts') or []
               if m.get('state', 'mounted') == 'mounted']
    checks.check('%s: the mount task\'s events mask the password (mounts[].volume.meta_password %s)' % (name, NO_LOG_VALUE),
                 len(volumes) == models and all(v.get('meta_password') == NO_LOG_VALUE for v in volumes)
                 and all(v.get('meta_url') == meta_url for v in volumes),
                 '%d item event(s) of %s, %d mount(s): %s' % (len(mounts), MOUNT_ACTION, len(volumes), [
                     dict(name=v.get('name'), meta_url=v.get('meta_url'), meta_password=shown(v.get('meta_password')))
                     for v in volumes]))
    censored = [e for e in events if any(r.get('censored') == CENSORED for r in results_of(e))]
    uncensored = [e for e in events if any(r.get('_ansible_no_log') for r in results_of(e))]
    checks.check('%s: every no_log result is censored in the events' % name, not uncensored,
                 '%d censored event(s)%s; %d no_log result(s) not censored' % (
                     len(censored), (' (%s)' % ', '.join(sorted(set('%s %s' % (e['event'], e['event_data'].get('task'))
                                                                    for e in censored)))) if censored else '',
                     len(uncensored)))


def needles(password, meta_url):
    """Every form of the secret to look for: the password raw and %-encoded, each quarter of it, and the
    password-bearing part of the URL (its userinfo) when it has one."""
    found = {password, quote(password, safe='')}
    if len(password) >= 16:
        step = len(password) // 4
        found.update(password[i:i + step] for i in range(0, step * 4, step))
    userinfo = urlsplit(meta_url).netloc.rpartition('@')[0]
    if ':' in userinfo:
        found.add(userinfo)
    return sorted(found)


def check_secrets(checks, name, pdd, ident, events, secrets):
    """No form of the secret in the events, nor in any file under the artifacts directory but in the credential's
    variables of ansible-runner's record of the environment (artifacts/IDENT/command)."""
    dumped = json.dumps(events)
    in_events = [s for s in secrets if s in dumped]
    artifacts = os.path.join(pdd, 'artifacts')
    found, allowed, files, size = [], [], 0, 0
    command = os.path.join(artifacts, ident, 'command')
    for top, _dirs, names in os.walk(artifacts):
        for fname in names:
            path = os.path.join(top, fname)
            with open(path, 'rb') as handle:
                data = handle.read()
            files += 1
            size += len(data)
            hits = [s for s in secrets if s.encode() in data]
            if hits and path == command:
                record = json.loads(data)
                held = [k for k in CREDENTIAL_ENV if any(s in str(record.get('env', {}).get(k, '')) for s in hits)]
                for key in held:
                    record['env'][key] = '<credential>'
                allowed.extend('%s env %s' % (os.path.relpath(path, pdd), k) for k in held)
                hits = [s for s in secrets if s in json.dumps(record)]
            if hits:
                found.append(os.path.relpath(path, pdd))
    stdout = os.path.join(artifacts, ident, 'stdout')
    checks.check('%s: the password is in no job event' % name, not in_events and bool(events),
                 '%d events, %d bytes searched for %d forms' % (len(events), len(dumped), len(secrets)))
    checks.check('%s: the password is in no file under artifacts/ (stdout included)' % name,
                 not found and os.path.getsize(stdout) > 0,
                 '%d files, %d bytes; found in %s; stdout %d bytes; allowed: %s'
                 % (files, size, found or 'none', os.path.getsize(stdout), ', '.join(allowed) or 'none'))


def guest_run(lab, argv, timeout=300):
    return subprocess.run([sys.executable, os.path.join(ROOT, 'tests', 'lab', 'guest_run.py'), '--uri', lab['lab_uri'],
                           '--vm', lab['lab_vm2'], '--timeout', str(timeout), '--'] + argv,
                          capture_output=True, text=True, check=False)


def check_bytes(checks, lab):
    host_dir = lab['lab_model_host_dir']
    host = {}
    for top, _dirs, names in os.walk(host_dir):
        for fname in names:
            path = os.path.join(top, fname)
            with open(path, 'rb') as handle:
                host[os.path.relpath(path, host_dir)] = hashlib.file_digest(handle, 'sha256').hexdigest()
    rels = sorted(host)
    proc = guest_run(lab, ['sha256sum'] + ['%s/%s' % (MOUNT_PATH, r) for r in rels])
    guest = {}
    for line in proc.stdout.splitlines():
        digest, _sep, path = line.partition('  ')
        guest[os.path.relpath(path, MOUNT_PATH)] = digest
    big = max(rels, key=lambda r: os.path.getsize(os.path.join(host_dir, r)))
    checks.check('the guest reads the host\'s bytes (sha256 through the guest agent)',
                 proc.returncode == 0 and len(host) >= 2 and guest == host,
                 '%d files; %s: host %s guest %s%s' % (len(host), big, host.get(big), guest.get(big),
                                                       '' if proc.returncode == 0 else '; ' + proc.stderr.strip()))


def check_nothing_left(checks, lab, events):
    infos = [res_of(e) for e in events if e.get('event') == 'runner_on_ok']
    vm = lab['lab_vm2']
    mounts = [m for i in infos for m in i.get('mounts', []) if m.get('vm') == vm]
    orphans = [o for i in infos for o in i.get('orphans', []) if o.get('vm') == vm]
    proc = guest_run(lab, ['cat', '/proc/mounts'], 120)
    lines = proc.stdout.splitlines()
    checks.check('after the unmount: no record, no orphan, no guest mount of %s' % MODEL,
                 len(infos) == 1 and proc.returncode == 0 and not [m for m in mounts if m.get('model') == MODEL]
                 and not [o for o in orphans if MODEL in json.dumps(o)]
                 and not [line for line in lines if ' %s ' % MOUNT_PATH in line],
                 'records on %s: %s' % (vm, [m.get('model') for m in mounts] or 'none'))
    if mounts:
        print('      (other records on %s: the device and virtiofs checks are skipped)' % vm)
        return
    xml = [subprocess.run(['virsh', '-c', lab['lab_uri'], 'dumpxml', vm] + extra, capture_output=True, text=True,
                          check=False).stdout for extra in ([], ['--inactive'])]
    checks.check('after the unmount: no device of ours in the live and persistent XML, no virtiofs mount in the guest',
                 all(x and "<target dir='aim" not in x for x in xml) and not [ln for ln in lines if ' virtiofs ' in ln])


def unmount_host_volume(point):
    """Take the host's mount of the volume under this test's mount root away (the modules leave it for other VMs)."""
    if subprocess.run(['mountpoint', '-q', point], check=False).returncode == 0:
        if subprocess.run(['umount', point], check=False).returncode != 0:
            subprocess.run(['umount', '-l', point], check=False)
    gone = subprocess.run(['mountpoint', '-q', point], check=False).returncode != 0
    if gone:
        for path in (point, os.path.dirname(point), os.path.dirname(os.path.dirname(point))):
            try:
                os.rmdir(path)
            except OSError:
                break
    return gone


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--lab-env', help='lab.env (default: $AIMODEL_LAB/lab.env)')
    parser.add_argument('--collections', help='the directory holding ansible_collections/aimodel/kvm (this tree)')
    parser.add_argument('--keep', action='store_true', help='keep the private data directories (they hold the secret)')
    args = parser.parse_args()
    coll = collections_dir(args.collections)
    try:
        import ansible_runner  # noqa: F401 pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        sys.exit('run_job.py: %s has no ansible_runner (pip install -r tests/requirements.txt)' % sys.executable)
    try:
        lab = labkit.lab_vars(args.lab_env)
    except (OSError, labkit.LabError) as exc:
        print('run_job.py: the lab is missing: %s' % exc, file=sys.stderr)
        return 2
    state = subprocess.run(['virsh', '-c', lab['lab_uri'], 'domstate', lab['lab_vm2']], capture_output=True, text=True,
                           check=False)
    if state.returncode != 0 or state.stdout.strip() != 'running':
        print('run_job.py: the lab is missing: its VM %s is not running (%s); make the lab with `bash tests/lab/lab up`'
              % (lab['lab_vm2'], (state.stdout + state.stderr).strip()), file=sys.stderr)
        return 2
    for key in CREDENTIAL_ENV + ('LIBVIRT_DEFAULT_URI', 'ANSIBLE_COLLECTIONS_PATH', 'ANSIBLE_COLLECTIONS_PATHS'):
        os.environ.pop(key, None)   # the jobs get them from env/envvars only
    # ansible-runner starts the ansible-playbook next to this python.
    os.environ['PATH'] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', '')
    mount_root = os.path.join(lab['lab_dir'], 'awx', 'volumes')
    point = os.path.join(mount_root, lab['lab_redis_volume_name'], 'ro')
    cred_env, cred_vars = credential(lab)
    envvars = dict(cred_env, ANSIBLE_COLLECTIONS_PATH=coll)
    secrets = needles(lab['lab_redis_password'], cred_env.get('AIMODEL_META_URL', ''))
    spec = awx_doc.survey('Mount models')
    answers = {'model_mounts_vms_limit': lab['lab_vm2']}
    mount_vars = dict(((q['variable'], answers.get(q['variable'], q.get('default', ''))) for q in spec['spec']), **cred_vars)
    unmount_vars = dict({'aimodel_unmount_models': MODEL, 'aimodel_unmount_vms': lab['lab_vm2'],
                         'aimodel_unmount_all': 'false', 'aimodel_unmount_force': 'false'}, **cred_vars)
    checks = Checks()
    print('collection: %s (ANSIBLE_COLLECTIONS_PATH=%s); VM %s; volume %s (%s); model %s at %s'
          % (ROOT, coll, lab['lab_vm2'], lab['lab_redis_volume_name'], lab['lab_redis_meta_url'], MODEL, MOUNT_PATH))
    print('env/envvars keys: %s; env/extravars (mount): %s' % (sorted(envvars), json.dumps(mount_vars)))
    os.makedirs(os.path.join(lab['lab_dir'], 'awx'), exist_ok=True)
    work = tempfile.mkdtemp(prefix='jobs-', dir=os.path.join(lab['lab_dir'], 'awx'))
    mounted = unmounted = False
    try:
        for number, ident in enumerate(('mount-1', 'mount-2'), 1):
            pdd = private_data_dir(work, ident, lab, mount_root, mount_vars, envvars)
            result, events, changed = run(pdd, ident, playbook='mount_models.yml')
            mounted = True
            for line in summary_lines(events):
                print('      summary: %s' % line)
            ok = check_job(checks, ident, result, events)
            check_from_tree(checks, ident, events)
            check_masked(checks, ident, events, 1, lab['lab_redis_meta_url'])
            check_secrets(checks, ident, pdd, ident, events, secrets)
            if number == 1:
                checks.check('mount-1: the job changed something', changed > 0, 'changed %d' % changed)
                if not ok:
                    break
                check_bytes(checks, lab)
            else:
                checks.check('mount-2: a no-op (changed 0 in the stats)', changed == 0, 'changed %d' % changed)
        pdd = private_data_dir(work, 'unmount-3', lab, mount_root, unmount_vars, envvars)
        result, events, changed = run(pdd, 'unmount-3', playbook='unmount_models.yml')
        unmounted = check_job(checks, 'unmount-3', result, events)
        checks.check('unmount-3: the job unmounted the model', changed > 0, 'changed %d' % changed)
        check_secrets(checks, 'unmount-3', pdd, 'unmount-3', events, secrets)
        pdd = private_data_dir(work, 'info-4', lab, mount_root, {}, envvars)
        result, events, _changed = run(pdd, 'info-4', host_pattern='hypervisors', module='aimodel.kvm.vm_model_mount_info',
                                       module_args=json.dumps({'vm': lab['lab_vm2'], 'volume': {'mount_root': mount_root}}))
        check_job(checks, 'info-4', result, events)
        check_secrets(checks, 'info-4', pdd, 'info-4', events, secrets)
        check_nothing_left(checks, lab, events)
    finally:
        if mounted and not unmounted:
            print('---- taking %s out of %s after a failure' % (MODEL, lab['lab_vm2']))
            pdd = private_data_dir(work, 'unmount-force', lab, mount_root, dict(unmount_vars, aimodel_unmount_force='true'),
                                   envvars)
            run(pdd, 'unmount-force', playbook='unmount_models.yml')
        if mounted:
            checks.check('the host\'s mount of the volume under %s is gone' % mount_root, unmount_host_volume(point), point)
        if args.keep:
            print('private data directories kept in %s' % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
            try:
                os.rmdir(os.path.dirname(work))
            except OSError:
                pass
    print('%d check(s) failed: %s' % (len(checks.failed), '; '.join(checks.failed)) if checks.failed else 'all checks passed')
    return 1 if checks.failed else 0


if __name__ == '__main__':
    sys.exit(main())
