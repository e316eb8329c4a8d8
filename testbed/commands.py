"""What each CLI command does, on the path the runner chose."""
from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path

from testbed.errors import UserError
from testbed.lab import Lab, teardown, with_overrides
from testbed.names import resolve_lab_name
from testbed.paths import CACHE_DIR, PROJECT, REPORTS
from testbed.runner import run_in_guest
from testbed.topology.loader import load


def validate(topology: str, quiet: bool = False) -> int:
    t = load(topology)
    if not quiet:
        print(f"{topology}: valid ({len(t.base.routers)} base routers, {len(t.vn_nodes)} VN nodes, "
              f"{len(t.virtual_links)} virtual links)")
    return 0


def overrides(args: argparse.Namespace) -> dict[str, str]:
    """The lab-wide fields the command line overrides (--mode, --backend, --routing, --keying)
    and the nodes' routing (--node-routing A=bird)."""
    given = {"datapath": getattr(args, "mode", None), "backend": getattr(args, "backend", None),
             "routing": getattr(args, "routing", None), "keying": getattr(args, "keying", None)}
    if getattr(args, "configure", None):
        given["configure"] = str(Path(args.configure).resolve())
    for item in getattr(args, "node_routing", None) or []:
        node, sep, routing = item.partition("=")
        if not sep:
            raise UserError(f"--node-routing '{item}': write NODE=DAEMON, e.g. A=bird")
        given[f"routing.{node}"] = routing
    return {key: value for key, value in given.items() if value is not None}


def topology_as_run(args: argparse.Namespace):
    """The topology of `test`/`up` with the command line's overrides applied."""
    return with_overrides(load(args.topology), overrides(args))


def uses_docker(args: argparse.Namespace) -> bool:
    """Does the command bring up a lab on the Docker backend?"""
    if args.command in ("test", "up"):
        return topology_as_run(args).backend == "docker"
    if args.command == "batch":
        from testbed.variants import parse
        return any(with_overrides(load(t), o).backend == "docker" for t, o in map(parse, args.variants))
    if args.command == "gate":
        from testbed.gate import PLAN, Stages, load_plan
        return any(with_overrides(load(run.topology), run.overrides).backend == "docker"
                   for run in Stages(load_plan((args.plan or PLAN).resolve())).all())
    if args.command == "implementations":
        from testbed.implementations import load_implementations, overrides_of
        found = load_implementations()
        return any(with_overrides(load(args.topology), overrides_of(found, name)).backend == "docker"
                   for name in (args.only.split(",") if args.only else found))
    return False


def build_images(path: str) -> int:
    """The node image where the lab's engine will find it: in this machine's
    engine when the datapath runs here, else as the archive the guest's engine imports."""
    from testbed import images
    from testbed.runtime import docker_engine
    engine = docker_engine.client_if_running() if path == "native" else None
    if engine is not None:
        image = images.ensure_image(engine, CACHE_DIR)
        print(f"iiptran: node image {images.image_tag()} ({image.short_id}) is in the Docker engine; "
              f"FRR {image.labels.get(images.LABEL_FRR, 'undeclared')}")
        return 0
    archive = images.build_archive(CACHE_DIR)
    print(f"iiptran: node image archive {archive.relative_to(PROJECT)} (FRR {images.archive_frr_version(archive)}); "
          "the Docker engine the runner starts in the guest imports it")
    return 0


def lab_name(args: argparse.Namespace) -> str:
    return resolve_lab_name(args, Lab.running)


def report_dir(args: argparse.Namespace) -> Path:
    if args.report:
        return args.report.resolve()
    if args.command == "test":
        from testbed.variants import folder_name
        return REPORTS / folder_name(topology_as_run(args), args.profile)
    if args.command == "matrix":
        return REPORTS / f"{load(args.topology[0]).name}-matrix"
    if args.command == "profiles":
        return REPORTS / "profiles"
    return REPORTS / f"{lab_name(args)}-check"


def native(args: argparse.Namespace) -> int:
    from testbed import status
    from testbed.suite import run_suite
    cmd = args.command
    if cmd == "up":
        lab = Lab.up(args.topology, lab_name(args), overrides(args))
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
        return run_suite(report_dir(args), topology=args.topology, name=lab_name(args), overrides=overrides(args),
                         fault=args.profile, page=not args.no_page)
    if cmd == "profiles":
        from testbed.profiles import run_profiles
        return run_profiles(report_dir(args), args.name or "profile", args.only.split(",") if args.only else None)
    if cmd == "batch":
        from testbed.variants import run_variants
        return run_variants(args.variants, args.report.resolve() if args.report else REPORTS)
    if cmd == "matrix":
        from testbed.matrix import run_matrix
        folders = ({args.topology[0]: report_dir(args)} if args.report else
                   {t: REPORTS / f"{load(t).name}-matrix" for t in args.topology})
        return run_matrix(folders, args.modes.split(","))
    if cmd == "implementations":
        from testbed.implementations import run_inner
        return run_inner(args.topology, args.only.split(","), args.report)
    if cmd == "gate":
        from testbed.gate import PLAN, run_inner
        return run_inner((args.plan or PLAN).resolve(), args.inner)
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


def _labs_with_containers() -> set[str]:
    """Labs that own containers in a Docker engine that is running (none started for this)."""
    from testbed.runtime import docker_engine
    from testbed.runtime.containers import LABEL_LAB, lab_containers
    engine = docker_engine.client_if_running()
    return {c.labels[LABEL_LAB] for c in lab_containers(engine)} if engine is not None else set()


def down(args: argparse.Namespace) -> int:
    from testbed.lab import make_runtime
    from testbed.runtime.netns import labs_with_namespaces
    with_containers = _labs_with_containers() if args.all else set()
    leftovers = labs_with_namespaces() | with_containers
    names = sorted(set(Lab.running()) | leftovers) if args.all else [lab_name(args)]
    for name in names:
        try:
            lab = Lab.attach(name)
        except UserError:
            if name not in leftovers:
                raise
            # Leftovers of a killed run (no state file), found by name or label.
            teardown(make_runtime("docker" if name in with_containers else "netns", name))
            print(f"removed leftovers of lab '{name}'")
            continue
        lab.down()
        print(f"lab '{name}' is down")
    return 0


def in_guest(args: argparse.Namespace, argv: list[str]) -> int:
    """Re-run this very command line inside the guest."""
    if args.command not in ("test", "matrix", "profiles", "batch", "implementations", "gate", "run", "kernel",
                            "validate"):
        from testbed.vm.session import forward
        return forward(args, argv)
    writable = [REPORTS]
    if args.command in ("test", "matrix", "profiles", "batch", "implementations") and args.report:
        writable = [args.report.resolve()]
    if args.command != "test":
        return run_in_guest([sys.executable, "-m", "testbed", *argv], writable, job=args.command,
                            keep=topology_folders(args))
    # The report's page is written here, natively, once the guest is done:
    # under emulation it costs about 6 s of CPU (the drawing, the template).
    code = run_in_guest([sys.executable, "-m", "testbed", *argv, "--no-page"], writable, job=args.command,
                        keep=topology_folders(args))
    folder = report_dir(args)
    if (folder / "results.json").exists():
        from testbed.report.html import write_report
        print(f"iiptran: report written to {write_report(folder)}")
    return code


def topology_folders(args: argparse.Namespace) -> list[Path]:
    """Folders of the lab files named by path, wherever they are: the guest
    sees its own scratch /tmp, not the host's."""
    from testbed.topology.loader import resolve_path
    from testbed.variants import parse
    given = getattr(args, "topology", None) or []
    names = [given] if isinstance(given, str) else list(given)
    variants = [parse(spec) for spec in getattr(args, "variants", None) or []]
    names += [topology for topology, _ in variants]
    hooks = [getattr(args, "configure", None)] + [overrides.get("configure") for _, overrides in variants]
    return sorted({resolve_path(name).resolve().parent for name in names}
                  | {Path(hook).resolve().parent for hook in hooks if hook})
