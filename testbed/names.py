"""Lab names: short, because they prefix namespace, FRR and folder names."""
from __future__ import annotations

import argparse
import re
from typing import Callable

from testbed.errors import UserError

LAB_NAME = re.compile(r"^[a-z0-9]{1,12}$")


def check_lab_name(name: str) -> str:
    if not LAB_NAME.match(name):
        raise UserError(f"lab name '{name}': use 1-12 lowercase letters or digits")
    return name


def default_lab_name(topology_name: str) -> str:
    return topology_name.replace("-", "")[:12]


def resolve_lab_name(args: argparse.Namespace, running: Callable[[], list[str]]) -> str:
    """--name, else the topology's default name, else the only lab `running` lists."""
    if getattr(args, "name", None):
        return args.name
    if getattr(args, "topology", None):
        from testbed.topology.loader import load
        return default_lab_name(load(args.topology).name)
    live = running()
    if len(live) == 1:
        return live[0]
    if not live:
        raise UserError("no lab is up here")
    raise UserError(f"several labs are up ({', '.join(live)}): say which with --name")
