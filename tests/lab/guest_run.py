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
Run it with the lab venv's python ($LAB_PYTHON), which has libvirt-python. The guest commands are those
of labkit.py beside it.
"""

import argparse
import os
import sys

import labkit

EXIT_TIMEOUT = 124
EXIT_ERROR = 125


def ping(uri, vm, wait):
    try:
        labkit.wait_agent(uri, vm, timeout=wait, ping_timeout=2, interval=0.5)
    except labkit.AgentError as exc:
        print(f"guest_run: {vm}: {exc}", file=sys.stderr)
        return 1
    return 0


def run(uri, vm, argv, timeout, input_data=None):
    conn, dom = labkit.open_domain(uri, vm)
    try:
        result = labkit.run(dom, argv, timeout, input_data)
    except labkit.GuestTimeout as exc:
        print(f"guest_run: {vm}: {exc}", file=sys.stderr)
        return EXIT_TIMEOUT
    finally:
        conn.close()
    for data, stream in ((result.out, sys.stdout.buffer), (result.err, sys.stderr.buffer)):
        if data:
            stream.write(data)
            stream.flush()
    for which in result.truncated:
        print(f"guest_run: guest {which}put was truncated by qemu-ga", file=sys.stderr)
    return result.rc


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
    except labkit.AgentError as exc:
        print(f"guest_run: {opts.vm}: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
