#!/usr/bin/env python
"""Run a command inside the lab guest through qemu-guest-agent (no shell, argv only).

Usage:
  guest_run.py [--uri URI] [--vm VM] [--timeout S] [--input FILE|-] -- ARGV...
      Runs ARGV in the guest (guest-exec, capture-output), copies the guest's stdout/stderr
      to this process's stdout/stderr and exits with the guest's exit code
      (128+N if the guest process was killed by signal N).
  guest_run.py [--uri URI] [--vm VM] --ping [--wait S]
      Exits 0 as soon as guest-ping answers, 1 if it did not within S seconds.

Defaults: --uri from $LAB_URI (else qemu:///system), --vm from $LAB_VM (else aimodel-lab).
Exit codes of this script itself: 124 = timeout while the guest command ran, 125 = libvirt/agent error.
Run it with the lab venv's python ($LAB_PYTHON), which has libvirt-python.
"""

import argparse
import base64
import json
import os
import sys
import time

import libvirt
import libvirt_qemu

EXIT_TIMEOUT = 124
EXIT_ERROR = 125


def _silent_error_handler(_ctx, _err):
    """Swallow libvirt's default printing of every error to stderr."""


libvirt.registerErrorHandler(_silent_error_handler, None)


class AgentError(Exception):
    pass


def _agent(dom, command, arguments=None, timeout=10):
    payload = {"execute": command}
    if arguments is not None:
        payload["arguments"] = arguments
    try:
        reply = libvirt_qemu.qemuAgentCommand(dom, json.dumps(payload), timeout, 0)
    except libvirt.libvirtError as exc:
        raise AgentError(f"{command}: {exc.get_error_message()}") from exc
    data = json.loads(reply)
    if "error" in data:
        raise AgentError(f"{command}: {data['error'].get('desc', data['error'])}")
    return data.get("return")


def _domain(uri, vm):
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise AgentError(f"cannot connect to {uri}: {exc.get_error_message()}") from exc
    try:
        return conn, conn.lookupByName(vm)
    except libvirt.libvirtError as exc:
        conn.close()
        raise AgentError(f"domain {vm!r}: {exc.get_error_message()}") from exc


def ping(uri, vm, wait):
    deadline = time.monotonic() + max(wait, 0)
    last = "no attempt"
    while True:
        conn = None
        try:
            conn, dom = _domain(uri, vm)
            _agent(dom, "guest-ping", timeout=2)
            return 0
        except AgentError as exc:
            last = str(exc)
        finally:
            if conn is not None:
                conn.close()
        if time.monotonic() >= deadline:
            print(f"guest_run: {vm}: guest agent not answering: {last}", file=sys.stderr)
            return 1
        time.sleep(0.5)


def run(uri, vm, argv, timeout, input_data=None):
    conn, dom = _domain(uri, vm)
    try:
        args = {"path": argv[0], "arg": argv[1:], "capture-output": True}
        if input_data is not None:
            args["input-data"] = base64.b64encode(input_data).decode("ascii")
        pid = _agent(dom, "guest-exec", args)["pid"]
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            status = _agent(dom, "guest-exec-status", {"pid": pid})
            if status.get("exited"):
                break
            if time.monotonic() >= deadline:
                print(f"guest_run: {vm}: {argv[0]} (guest pid {pid}) still running after {timeout} s",
                      file=sys.stderr)
                return EXIT_TIMEOUT
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
    finally:
        conn.close()
    for key, stream in (("out-data", sys.stdout.buffer), ("err-data", sys.stderr.buffer)):
        if status.get(key):
            stream.write(base64.b64decode(status[key]))
            stream.flush()
    for key in ("out-truncated", "err-truncated"):
        if status.get(key):
            print(f"guest_run: guest {key.split('-', maxsplit=1)[0]}put was truncated by qemu-ga", file=sys.stderr)
    if "signal" in status:
        return 128 + int(status["signal"])
    return int(status.get("exitcode", 0))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Run ARGV inside the lab guest via qemu-guest-agent (argv only, no shell).")
    parser.add_argument("--uri", default=os.environ.get("LAB_URI") or "qemu:///system")
    parser.add_argument("--vm", default=os.environ.get("LAB_VM") or "aimodel-lab")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for the guest command (default 60)")
    parser.add_argument("--input", metavar="FILE",
                        help="feed FILE ('-' = our stdin) to the guest command's stdin")
    parser.add_argument("--ping", action="store_true", help="only wait for guest-ping")
    parser.add_argument("--wait", type=float, default=0.0,
                        help="with --ping: seconds to keep trying (default 0 = one try)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- ARGV...")
    opts = parser.parse_args(argv)
    command = opts.command
    if command and command[0] == "--":
        command = command[1:]
    try:
        if opts.ping:
            if command:
                parser.error("--ping takes no command")
            return ping(opts.uri, opts.vm, opts.wait)
        if not command:
            parser.error("missing command: guest_run.py [options] -- ARGV...")
        data = None
        if opts.input == "-":
            data = sys.stdin.buffer.read()
        elif opts.input:
            with open(opts.input, "rb") as handle:
                data = handle.read()
        return run(opts.uri, opts.vm, command, opts.timeout, data)
    except AgentError as exc:
        print(f"guest_run: {opts.vm}: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
