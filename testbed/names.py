"""Lab names: short, because they prefix namespace, FRR and folder names."""
from __future__ import annotations

import re

from testbed.errors import UserError

LAB_NAME = re.compile(r"^[a-z0-9]{1,12}$")


def check_lab_name(name: str) -> str:
    if not LAB_NAME.match(name):
        raise UserError(f"lab name '{name}': use 1-12 lowercase letters or digits")
    return name


def default_lab_name(topology_name: str) -> str:
    return topology_name.replace("-", "")[:12]
