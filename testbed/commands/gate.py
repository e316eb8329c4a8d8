"""`iiptran gate`: everything make test judges, as one plan (conformance/gate.yaml)."""
from __future__ import annotations

import argparse
from pathlib import Path

from testbed.commands import Command


def arguments(p) -> None:
    p.add_argument("plan", nargs="?", type=Path, help="the plan (default conformance/gate.yaml)")
    p.add_argument("--inner", metavar="SERIES", help=argparse.SUPPRESS)   # one kernel series' pool, where it runs
    p.add_argument("--selftest", action="store_true", help=argparse.SUPPRESS)   # the self-test after that pool


def _plan(args) -> Path:
    from testbed.gate import PLAN
    return (args.plan or PLAN).resolve()


def check(args) -> None:
    from testbed.gate import Stages, load_plan
    Stages(load_plan(_plan(args)))


def on_docker(args) -> bool:
    from testbed.gate import Stages, load_plan
    from testbed.topology.loader import load
    from testbed.topology.overrides import with_overrides
    return any(with_overrides(load(run.topology), run.overrides).backend == "docker"
               for run in Stages(load_plan(_plan(args))).all())


def host(args, native: bool) -> int:
    from testbed.gate import run_outer
    return run_outer(_plan(args), native, args.runner)


def run(args) -> int:
    from testbed.gate import run_inner
    return run_inner(_plan(args), args.inner, args.selftest)


COMMAND = Command("gate", "everything make test judges, as one plan (conformance/gate.yaml): the mode and "
                  "implementation matrices, variants, negative profiles, self-test; one pool per kernel", arguments,
                  run, place="host", check=check, orchestrates=lambda args: not args.inner, host=host,
                  docker=on_docker)
