"""What each CLI command does, on the path the runner chose."""
from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path

from testbed.errors import UserError
from testbed.lab import Lab, teardown
from testbed.names import resolve_lab_name
from testbed.runner import PROJECT, run_in_guest
from testbed.topology.loader import load

REPORTS = PROJECT / "reports"


def validate(topology: str, quiet: bool = False) -> int:
    t = load(topology)
    if not quiet:
        print(f"{topology}: valid ({len(t.base.routers)} base routers, {len(t.vn_nodes)} VN nodes, "
              f"{len(t.virtual_links)} virtual links)")
    return 0


def lab_name(args: argparse.Namespace) -> str:
    return resolve_lab_name(args, Lab.running)


def report_dir(args: argparse.Namespace) -> Path:
    if args.report:
        return args.report.resolve()
    if args.command == "test":
        mode = args.mode or load(args.topology).datapath
        suffix = ("" if mode == "iiptran" else f"-{mode}") + (f"-{args.profile}" if args.profile else "")
        return REPORTS / (load(args.topology).name + suffix)
    if args.command == "matrix":
        return REPORTS / f"{load(args.topology).name}-matrix"
    if args.command == "profiles":
        return REPORTS / "profiles"
    return REPORTS / f"{lab_name(args)}-check"


def native(args: argparse.Namespace) -> int:
    from testbed import status
    from testbed.suite import run_suite
    cmd = args.command
    if cmd == "up":
        lab = Lab.up(args.topology, lab_name(args), args.mode)
        print(f"lab '{lab.name}' is up: converged {lab.timings['up_to_converged_s']} s after start")
        print(status.render(lab))
        return 0
    if cmd == "down":
        return down(args)
    if cmd == "status":
        print(status.render(Lab.attach(lab_name(args))))
        return 0
    if cmd == "exec":
        lab = Lab.attach(lab_name(args))
        if args.node not in lab.plan.nodes:
            raise UserError(f"lab '{lab.name}' has no node '{args.node}' (nodes: {', '.join(lab.plan.nodes)})")
        argv = lab.runtime.exec_argv(args.node, _command(args.cmd))
        if _has_real_stdout():
            return subprocess.call(argv)          # interactive programs keep the terminal
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        return done.returncode
    if cmd == "join":
        lab = Lab.attach(lab_name(args))
        lab.join(args.node)
        print(f"{args.node} joined lab '{lab.name}'; the lab has converged")
        return 0
    if cmd == "check":
        return run_suite(report_dir(args), lab=lab_name(args), select=args.select)
    if cmd == "fault":
        from testbed.faults import apply
        lab = Lab.attach(lab_name(args))
        print(f"lab '{lab.name}': {apply(lab, args.fault)}")
        return 0
    if cmd == "test":
        return run_suite(report_dir(args), topology=args.topology, name=lab_name(args), mode=args.mode,
                         fault=args.profile)
    if cmd == "profiles":
        from testbed.profiles import run_profiles
        return run_profiles(report_dir(args), args.name or "profile", args.only.split(",") if args.only else None)
    if cmd == "matrix":
        from testbed.matrix import run_matrix
        return run_matrix(report_dir(args), args.topology, lab_name(args), args.modes.split(","))
    if cmd == "run":
        return subprocess.call(_command(args.cmd))
    raise UserError(f"unknown command {cmd}")


def _has_real_stdout() -> bool:
    """False when stdout is captured in memory (the guest agent relays it)."""
    try:
        sys.stdout.fileno()
        return True
    except (AttributeError, io.UnsupportedOperation):
        return False


def _command(cmd: list[str]) -> list[str]:
    return cmd[1:] if cmd[:1] == ["--"] else cmd


def down(args: argparse.Namespace) -> int:
    from testbed.runtime.netns import NetnsRuntime, labs_with_namespaces
    names = sorted(set(Lab.running()) | labs_with_namespaces()) if args.all else [lab_name(args)]
    for name in names:
        try:
            lab = Lab.attach(name)
        except UserError:
            if name not in labs_with_namespaces():
                raise
            teardown(NetnsRuntime(name))     # leftovers of a killed run: no state file
            print(f"removed leftovers of lab '{name}'")
            continue
        lab.down()
        print(f"lab '{name}' is down")
    return 0


def in_guest(args: argparse.Namespace, argv: list[str]) -> int:
    """Re-run this very command line inside the guest."""
    if args.command not in ("test", "matrix", "profiles", "run", "kernel", "validate"):
        from testbed.vm.session import forward
        return forward(args, argv)
    writable = [REPORTS]
    if args.command in ("test", "matrix", "profiles") and args.report:
        writable = [args.report.resolve()]
    command = [sys.executable, "-m", "testbed", *argv]
    return run_in_guest(command, writable, job=args.command)
