"""`iiptran`: bring RFC 3884 labs up and down, inspect them, run the conformance suite."""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from testbed.errors import TestbedError, UserError
from testbed.names import check_lab_name
from testbed.paths import REPORTS, in_guest
from testbed.runner import RUNNERS, announce, decide
from testbed.topology.generate import NODES_PER_ROUTER, SHAPES
from testbed.topology.model import BACKENDS, DATAPATH_MODES, KEYINGS, ROUTINGS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iiptran", description=__doc__)
    parser.add_argument("--runner", default="auto", choices=RUNNERS,
                        help="where the datapath runs: this kernel, a guest, or auto (default)")
    parser.add_argument("--guest-memory", type=int, metavar="MB",
                        help="the guest's memory when it runs there (default 2048, or IIPTRAN_GUEST_MEMORY)")
    parser.add_argument("--kernel", metavar="SERIES",
                        help="the Debian kernel series the guest boots: 6.1 (default) or 6.12, or IIPTRAN_KERNEL; "
                             "natively the kernel is the one running")
    sub = parser.add_subparsers(dest="command", required=True)

    def named(p: argparse.ArgumentParser) -> None:
        p.add_argument("--name", help="lab name (default: the topology's name, or the only lab up)")

    def moded(p: argparse.ArgumentParser) -> None:
        p.add_argument("--mode", choices=DATAPATH_MODES,
                       help="datapath: iiptran (RFC 3884), or an alternative it is compared with "
                       "(default: the topology's 'datapath', else iiptran)")

    def varied(p: argparse.ArgumentParser) -> None:
        """The lab-wide fields a run may override besides the datapath."""
        p.add_argument("--backend", choices=BACKENDS,
                       help="where nodes live: netns (network namespaces) or docker (containers of the "
                       "images/node image) (default: the topology's 'backend', else netns)")
        p.add_argument("--routing", choices=ROUTINGS,
                       help="VN routing: frr or bird (OSPF), or static routes over the tunnels "
                       "(default: the topology's)")
        p.add_argument("--configure", metavar="EXECUTABLE",
                       help="every VN node configures its tunnels, IPsec and routing itself with this program, "
                       "given the node's plan as JSON on stdin (e.g. topologies/hooks/iiptran-ip.sh)")
        p.add_argument("--node-routing", action="append", metavar="NODE=DAEMON",
                       help="one VN node's OSPF daemon (frr or bird), e.g. A=bird for FRR-BIRD adjacencies; "
                       "repeatable")
        p.add_argument("--keying", choices=KEYINGS,
                       help="who installs the SAs: manual (the testbed's keys) or ikev2 (strongSwan) "
                       "(default: the topology's 'keying', else manual)")

    p = sub.add_parser("up", help="bring a lab up and wait until it has converged")
    p.add_argument("topology", help="topology name (fig3, fig6) or path to a lab file")
    named(p)
    moded(p)
    varied(p)
    p = sub.add_parser("down", help="tear a lab down")
    named(p)
    p.add_argument("--all", action="store_true", help="every lab on this machine, leftovers included")
    p = sub.add_parser("status", help="nodes, tunnels, OSPF neighbours and SAs of a lab")
    named(p)
    p = sub.add_parser("exec", help="run a command inside a node")
    named(p)
    p.add_argument("node")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- command and arguments")
    p = sub.add_parser("join", help="bring a detached VN node into the lab (RFC 3884 4.2.3.2)")
    named(p)
    p.add_argument("node")
    p = sub.add_parser("check", help="run the conformance suite against a lab that is up")
    named(p)
    p.add_argument("--report", type=Path, help="report folder (default reports/<lab>-check)")
    p.add_argument("-k", dest="select", help="only the checks matching this pytest -k expression")
    p = sub.add_parser("fault", help="break a live lab on purpose (to see the suite fail)")
    named(p)
    p.add_argument("fault", help="a fault of testbed/faults, e.g. no-policies (an unknown name lists them all)")
    p = sub.add_parser("test", help="up, conformance suite, report, down")
    p.add_argument("topology")
    named(p)
    moded(p)
    varied(p)
    p.add_argument("--report", type=Path, help="report folder (default reports/<topology>[-<mode>])")
    p.add_argument("--profile", help="run against this built-in broken configuration (a negative profile)")
    p.add_argument("--no-page", action="store_true", help=argparse.SUPPRESS)   # the caller writes index.html
    p = sub.add_parser("profiles", help="the suite against every negative profile: exactly the right checks fail")
    named(p)
    p.add_argument("--only", help="comma-separated profile names (default: all of conformance/profiles.yaml)")
    p.add_argument("--report", type=Path, help="report folder (default reports/profiles)")
    p = sub.add_parser("batch", help="the suite against several variants side by side, e.g. fig6:keying=ikev2 "
                       "fig6:backend=docker,keying=ikev2 fig3:routing=static")
    p.add_argument("variants", nargs="+",
                   help="topology[:field=value,...] (fields: datapath, backend, routing, keying, "
                   "and routing.<VN node>)")
    p.add_argument("--report", type=Path, help="folder the variants' report folders go in (default reports/)")
    p = sub.add_parser("matrix", help="the suite against every datapath mode, side by side, on one topology or "
                       "several (one batch)")
    p.add_argument("topology", nargs="+")
    p.add_argument("--modes", default=",".join(DATAPATH_MODES), help="comma-separated (default: all three)")
    p.add_argument("--report", type=Path, help="report folder (default reports/<topology>-matrix)")
    p = sub.add_parser("implementations", help="the suite against several implementations (routing stacks, "
                       "keying, kernels: conformance/implementations.yaml), each verdict compared with the reference's")
    p.add_argument("topology")
    p.add_argument("--only", help="comma-separated implementations (default: all; the reference always runs)")
    p.add_argument("--report", type=Path, help="report folder (default reports/<topology>-implementations)")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)   # one kernel's batch, where it runs
    p = sub.add_parser("gate", help="everything make test judges, as one plan (conformance/gate.yaml): the mode "
                       "and implementation matrices, variants, negative profiles, self-test; one pool per kernel")
    p.add_argument("plan", nargs="?", type=Path, help="the plan (default conformance/gate.yaml)")
    p.add_argument("--inner", metavar="SERIES", help=argparse.SUPPRESS)   # one kernel series' pool, where it runs
    p = sub.add_parser("validate", help="check a topology file without building anything")
    p.add_argument("topology")
    p = sub.add_parser("generate", help="write a lab file of N VN nodes: ring, grid, hub (and spokes) or random")
    p.add_argument("shape", choices=SHAPES)
    p.add_argument("--nodes", type=int, required=True, help="how many VN nodes")
    p.add_argument("--routers", type=int, help=f"base routers, in a ring (default: one per {NODES_PER_ROUTER} "
                                                "VN nodes, at least two)")
    p.add_argument("--seed", type=int, default=1, help="seed of the costs, flows and random edges (default 1)")
    p.add_argument("--degree", type=float, default=3.0, help="random: mean virtual links per node (default 3)")
    p.add_argument("--hubs", type=int, default=1, help="hub: 1, or 2 hubs every spoke is linked to (default 1)")
    p.add_argument("--no-bfd", action="store_true", help="no BFD on the virtual links (OSPF's dead interval alone)")
    p.add_argument("--out", type=Path, help="lab file to write (default topologies/generated/<name>.yaml)")
    p = sub.add_parser("run", help="run a command where the real datapath is (natively or in the guest)")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    sub.add_parser("kernel", help="say whether this kernel can run the datapath, and why")
    sub.add_parser("images", help="build the Docker backend's node image from images/node (cached)")
    p = sub.add_parser("compare", help="which requirements changed verdict between runs (results.json files, "
                                       "oldest first), printed and as an HTML page")
    p.add_argument("runs", type=Path, nargs="+", metavar="results.json")
    p.add_argument("--strict", action="store_true", help="exit 1 on any change, not only on new failures")
    p.add_argument("--html", type=Path, default=REPORTS / "compare.html",
                   help="where the HTML view goes (default reports/compare.html)")
    return parser


def _implementations(args: argparse.Namespace) -> int:
    """Checked here (exit 2 before anything boots), then one batch per kernel series."""
    from testbed import commands
    from testbed.implementations import check_overrides, chosen, load_implementations, run_outer
    from testbed.topology.loader import load
    commands.validate(args.topology, quiet=True)
    found = load_implementations()
    names = chosen(found, args.only.split(",") if args.only else None)
    check_overrides(args.topology, found, names)
    report = (args.report or REPORTS / f"{load(args.topology).name}-implementations").resolve()
    path, reason = decide(args.runner)
    announce(path, reason)
    return run_outer(args.topology, names, report, path == "native", args.runner)


def _gate(args: argparse.Namespace) -> int:
    """Checked here (exit 2 before anything boots), then one pool per kernel series."""
    from testbed.gate import PLAN, Stages, load_plan, run_outer
    plan = (args.plan or PLAN).resolve()
    Stages(load_plan(plan))
    path, reason = decide(args.runner)
    announce(path, reason)
    return run_outer(plan, path == "native", args.runner)


def _in_finalizer(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _strip_dashes(cmd: list[str]) -> list[str]:
    return cmd[1:] if cmd[:1] == ["--"] else cmd


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every cleanup path runs; forked
    # children (e.g. a library's helper) keep the default and just exit.
    main_pid = os.getpid()

    def on_stop_signal(signum, frame):
        if os.getpid() != main_pid:
            os._exit(128 + signum)
        if _in_finalizer(frame):
            # Python prints and drops an exception raised inside __del__ (every
            # finished subprocess passes through Popen.__del__), and the run
            # would go on: deliver the signal again once the finalizer is done.
            threading.Timer(0.05, os.kill, (main_pid, signum)).start()
            return
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_stop_signal)
    signal.signal(signal.SIGINT, on_stop_signal)
    try:
        return dispatch(args, argv)
    except TestbedError as exc:
        print(f"iiptran: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("iiptran: interrupted; cleaned up", file=sys.stderr)
        return 130


def dispatch(args: argparse.Namespace, argv: list[str]) -> int:
    if args.guest_memory is not None:
        os.environ["IIPTRAN_GUEST_MEMORY"] = str(args.guest_memory)
    if os.environ.get("IIPTRAN_GUEST_MEMORY"):
        from testbed.vm.guest import guest_memory_mb
        guest_memory_mb()          # a bad size: exit 2 before anything boots
    if args.kernel is not None:
        os.environ["IIPTRAN_KERNEL"] = args.kernel
    if os.environ.get("IIPTRAN_KERNEL"):
        from testbed.vm.kernel_cache import kernel_series
        kernel_series()            # an unknown series: exit 2 before anything boots
    if args.command == "compare":
        from testbed.report.compare import compare_files
        return compare_files(args.runs, args.html, args.strict)
    if args.command == "run" and in_guest():
        # Inside the guest already: no need to load the lab machinery.
        import subprocess
        return subprocess.call(_strip_dashes(args.cmd))
    if args.command == "generate":
        from testbed.topology.generate import Request, write
        request = Request(args.shape, args.nodes, args.routers, args.seed, args.degree, args.hubs, not args.no_bfd)
        out = write(request, args.out)
        print(f"iiptran: wrote {out}")
        return 0
    from testbed import commands
    if args.command == "validate":
        return commands.validate(args.topology)
    if getattr(args, "name", None):
        check_lab_name(args.name)
    if args.command == "matrix":
        unknown = [m for m in args.modes.split(",") if m not in DATAPATH_MODES]
        if unknown:
            raise UserError(f"matrix --modes: unknown {unknown} (known: {', '.join(DATAPATH_MODES)})")
    if args.command == "profiles" and args.only:
        from testbed.profiles import chosen_profiles, load_profiles
        chosen_profiles(load_profiles(), args.only.split(","))
    if args.command == "test" and args.profile:
        from testbed.faults import FAULTS
        if args.profile not in FAULTS:
            raise UserError(f"test --profile: unknown profile '{args.profile}' (known: {', '.join(FAULTS)})")
        if (args.mode or "iiptran") != "iiptran":
            raise UserError("test --profile: negative profiles break IIPtran labs; drop --mode")
    if args.command == "implementations" and not args.inner:
        return _implementations(args)
    if args.command == "gate" and not args.inner:
        return _gate(args)
    if args.command in ("test", "up", "matrix"):
        for topology in args.topology if isinstance(args.topology, list) else [args.topology]:
            commands.validate(topology, quiet=True)    # bad input: exit 2 before any VM boots
    if args.command == "matrix" and args.report and len(args.topology) > 1:
        raise UserError("matrix --report: give one topology (several write reports/<topology>-matrix each)")
    if args.command in ("test", "up"):
        commands.topology_as_run(args)                 # the overrides fit the topology
    if args.command == "batch":
        from testbed.variants import planned
        planned(args.variants, args.report or REPORTS)
    if args.command == "implementations" and not (args.only and args.report):
        raise UserError("implementations --inner is the per-kernel step; give --only and --report")
    if args.command == "run" and not _strip_dashes(args.cmd):
        raise UserError("run: give a command after --")
    if args.command == "exec" and not _strip_dashes(args.cmd):
        raise UserError("exec: give a command after --")
    path, reason = decide(args.runner)
    if args.command == "kernel":
        announce(path, reason)
        return 0
    if args.command == "images":
        return commands.build_images(path)
    if commands.uses_docker(args) and path == "guest":
        from testbed.runtime.docker_engine import require_engine_binaries
        require_engine_binaries()
        commands.build_images(path)     # the guest has no network: its engine imports the archive
    if path == "guest":
        announce(path, reason)
        return commands.in_guest(args, argv)
    if not in_guest():
        announce(path, reason)
        if os.environ.get("IIPTRAN_KERNEL"):
            print(f"iiptran: --kernel {os.environ['IIPTRAN_KERNEL']} picks the guest's kernel; running natively on "
                  f"{os.uname().release} (--runner guest to boot the series)", file=sys.stderr)
    return commands.native(args)


if __name__ == "__main__":
    sys.exit(main())
