"""`iiptran batch`: the suite against several variants side by side."""
from __future__ import annotations

from pathlib import Path

from testbed.commands import Command
from testbed.paths import REPORTS


def arguments(p) -> None:
    p.add_argument("variants", nargs="+",
                   help="topology[:field=value,...] (fields: datapath, backend, routing, keying, and routing.<VN node>)")
    p.add_argument("--report", type=Path, help="folder the variants' report folders go in (default reports/)")


def check(args) -> None:
    from testbed.variants import planned
    planned(args.variants, args.report or REPORTS)


def on_docker(args) -> bool:
    from testbed.topology.loader import load
    from testbed.topology.overrides import with_overrides
    from testbed.variants import parse
    return any(with_overrides(load(t), o).backend == "docker" for t, o in map(parse, args.variants))


def run(args) -> int:
    from testbed.variants import run_variants
    return run_variants(args.variants, args.report.resolve() if args.report else REPORTS)


COMMAND = Command("batch", "the suite against several variants side by side, e.g. fig6:keying=ikev2 "
                  "fig6:backend=docker,keying=ikev2 fig3:routing=static", arguments, run, check=check, docker=on_docker,
                  writable=lambda args: [args.report.resolve()] if args.report else [REPORTS])
