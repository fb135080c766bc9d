# -*- coding: utf-8 -*-
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab toolkit of the scripts (tests/lab/guest_run.py, tests/lab/lab_vars.py, bench/, tests/reliability/):
the lab's variables, and guest commands through qemu-guest-agent.

It does not use the collection's own code (plugins/module_utils) on purpose: the checks and the figures
stay independent of the code under test. libvirt-python is imported only when a guest is reached, so
lab_vars() works under any python.
"""

import base64
import json
import os
import shlex
import time

# lab.env key -> variable name (for ansible's -e @file and integration_config.yml).
KEYS = {
    'LAB_URI': 'lab_uri',
    'LAB_VM': 'lab_vm',
    'LAB_VM2': 'lab_vm2',
    'LAB_VM_Q35': 'lab_vm_q35',
    'LAB_VM_DEB': 'lab_vm_deb',
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


class LabError(Exception):
    """The lab is not as expected (lab.env incomplete)."""


class AgentError(Exception):
    """libvirt or the guest agent refused or failed a request."""


class GuestTimeout(AgentError):
    """A guest command still ran at its deadline."""

    def __init__(self, argv, pid, timeout):
        AgentError.__init__(self, f'{argv[0]} (guest pid {pid}) still running after {timeout} s')
        self.pid = pid


# --- the lab's variables -------------------------------------------------------------------------------

def env_file(path=None):
    """lab.env: path, else $AIMODEL_LAB/lab.env (AIMODEL_LAB defaults to /var/tmp/aimodel-lab)."""
    return path or os.path.join(os.environ.get('AIMODEL_LAB', '/var/tmp/aimodel-lab'), 'lab.env')


def lab_vars(path=None):
    """The lab's variables by their ansible names (KEYS), plus ansible_python_interpreter (the lab venv's python).
    Raises LabError when lab.env lacks one of KEYS."""
    values = {}
    with open(env_file(path), encoding='utf-8') as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith('#') or '=' not in line:
                continue
            key, _sep, raw = line.partition('=')
            parts = shlex.split(raw)
            values[key.strip()] = parts[0] if parts else ''
    missing = [k for k in KEYS if k not in values]
    if missing:
        raise LabError('lab.env lacks ' + ', '.join(missing))
    out = dict((name, values[key]) for key, name in KEYS.items())
    out['ansible_python_interpreter'] = values['LAB_PYTHON']
    return out


# --- libvirt and the guest agent ------------------------------------------------------------------------

_LIBVIRT = []


def libvirt():
    """The libvirt module, with libvirt's default printing of every error to stderr switched off."""
    if not _LIBVIRT:
        import libvirt as module  # pylint: disable=import-outside-toplevel,import-error,redefined-outer-name
        module.registerErrorHandler(lambda _ctx, _err: None, None)
        _LIBVIRT.append(module)
    return _LIBVIRT[0]


def open_domain(uri, vm):
    """(connection, domain); the caller closes the connection. Raises AgentError."""
    virt = libvirt()
    try:
        conn = virt.open(uri)
    except virt.libvirtError as exc:
        raise AgentError(f'cannot connect to {uri}: {exc.get_error_message()}') from exc
    try:
        return conn, conn.lookupByName(vm)
    except virt.libvirtError as exc:
        conn.close()
        raise AgentError(f'domain {vm!r}: {exc.get_error_message()}') from exc


def agent(domain, execute, arguments=None, timeout=10):
    """One guest agent command on a libvirt domain; its return value. Raises AgentError."""
    virt = libvirt()
    import libvirt_qemu  # pylint: disable=import-outside-toplevel,import-error
    request = {'execute': execute}
    if arguments is not None:
        request['arguments'] = arguments
    try:
        reply = libvirt_qemu.qemuAgentCommand(domain, json.dumps(request), timeout, 0)
    except virt.libvirtError as exc:
        raise AgentError(f'{execute}: {exc.get_error_message()}') from exc
    data = json.loads(reply)
    if 'error' in data:
        raise AgentError(f"{execute}: {data['error'].get('desc', data['error'])}")
    return data.get('return')


def sender(domain, timeout=10):
    """send(execute, arguments) -> return value, on one domain handle (for exec_with and write_file)."""
    return lambda execute, arguments: agent(domain, execute, arguments, timeout)


# Poll schedules for exec_with: delay(n, elapsed) = seconds to sleep before the n-th guest-exec-status
# (n from 0; elapsed: seconds since guest-exec returned).

def backoff(n, _elapsed):
    """First status at once, then after 0.02 s, doubling up to 0.2 s."""
    return 0 if n == 0 else min(0.02 * 2 ** (n - 1), 0.2)


def fine_then_coarse(_n, elapsed):
    """Every 4 ms for the first 2 s (a doubling interval would round a timed command up to its next poll),
    then every 0.1 s; the first status after 4 ms too."""
    return 0.004 if elapsed < 2 else 0.1


def every(interval):
    """First status at once, then every interval seconds."""
    return lambda n, _elapsed: 0 if n == 0 else interval


class Result:
    """A finished guest command: exitcode (None when killed by a signal), signal, out and err (bytes),
    and which of them qemu-ga truncated."""

    def __init__(self, status):
        self.exitcode = status.get('exitcode')
        self.signal = status.get('signal')
        self.out = base64.b64decode(status.get('out-data', ''))
        self.err = base64.b64decode(status.get('err-data', ''))
        self.truncated = [key.split('-', 1)[0] for key in ('out-truncated', 'err-truncated') if status.get(key)]

    @property
    def rc(self):
        """Exit status as a shell gives it: 128+N for signal N."""
        if self.signal is not None:
            return 128 + int(self.signal)
        return int(self.exitcode or 0)

    def text(self):
        """(exitcode, stdout, stderr) with the output decoded."""
        return self.exitcode, self.out.decode(), self.err.decode()


def exec_with(send, argv, timeout=60, input_data=None, delay=backoff):
    """guest-exec of argv (no shell; input_data: bytes for its stdin) through send(execute, arguments), then
    guest-exec-status on the schedule delay until it exits. Returns a Result; raises GuestTimeout when it still
    runs timeout seconds after it started, AgentError when the agent refuses."""
    args = {'path': argv[0], 'arg': list(argv[1:]), 'capture-output': True}
    if input_data is not None:
        args['input-data'] = base64.b64encode(input_data).decode('ascii')
    pid = send('guest-exec', args)['pid']
    start = time.monotonic()
    n = 0
    while True:
        pause = delay(n, time.monotonic() - start)
        if pause:
            time.sleep(pause)
        n += 1
        status = send('guest-exec-status', {'pid': pid})
        if status.get('exited'):
            return Result(status)
        if time.monotonic() > start + timeout:
            raise GuestTimeout(argv, pid, timeout)


def run(domain, argv, timeout=60, input_data=None, delay=backoff, agent_timeout=10):  # pylint: disable=too-many-arguments,too-many-positional-arguments
    """exec_with on one libvirt domain handle."""
    return exec_with(sender(domain, agent_timeout), argv, timeout, input_data, delay)


def write_file(send, path, data):
    """Write bytes to a file in the guest with the agent's file commands (no guest process)."""
    handle = send('guest-file-open', {'path': path, 'mode': 'w'})
    try:
        send('guest-file-write', {'handle': handle, 'buf-b64': base64.b64encode(data).decode()})
    finally:
        send('guest-file-close', {'handle': handle})


def ping(domain, timeout=2):
    agent(domain, 'guest-ping', timeout=timeout)


def wait_agent(uri, vm, timeout=180, ping_timeout=2, interval=0.5):
    """Until guest-ping answers, on a new connection each try (libvirtd may restart meanwhile); at least one try.
    Raises AgentError with the last error when it did not answer within timeout seconds."""
    deadline = time.monotonic() + max(timeout, 0)
    while True:
        conn = None
        try:
            conn, domain = open_domain(uri, vm)
            ping(domain, ping_timeout)
            return
        except AgentError as exc:
            last = str(exc)
        finally:
            if conn is not None:
                conn.close()
        if time.monotonic() >= deadline:
            raise AgentError(f'guest agent not answering: {last}')
        time.sleep(interval)
