"""A topology with lab-wide fields overridden (the command line's --mode,
--backend, --routing, --keying, --configure, a node's routing), checked as
the file's own values are."""
from __future__ import annotations

from pathlib import Path

from testbed.errors import UserError
from testbed.topology.loader import check_consistency, configure_problem
from testbed.topology.model import NODE_ROUTINGS, OVERRIDABLE, Topology


def with_overrides(topology: Topology, overrides: dict[str, str] | None = None) -> Topology:
    """The topology with lab-wide fields overridden (CLI flags: --mode,
    --backend, --routing, --keying, --configure), nodes' routing
    (`routing.A=bird`), checked as the file's own values are."""
    update = {key: value for key, value in (overrides or {}).items() if value is not None}
    nodes, lab_wide = {}, {}
    for key, value in update.items():
        field, _, node = key.partition(".")
        if node and field == "routing":
            if node not in topology.vn_nodes:
                raise UserError(f"'{key}': no VN node '{node}' (known: {', '.join(topology.vn_nodes)})")
            if value not in NODE_ROUTINGS:
                raise UserError(f"unknown routing '{value}' for node {node} (known: {', '.join(NODE_ROUTINGS)})")
            nodes[node] = topology.vn_nodes[node].model_copy(update={"routing": value})
        elif key == "configure":
            lab_wide[key] = str(Path(value).resolve())       # a path given here is relative to here
            problem = configure_problem(Path(lab_wide[key]))
            if problem:
                raise UserError(f"configure={value}: {problem}")
        elif key not in OVERRIDABLE:
            raise UserError(f"'{key}' cannot be overridden (only {', '.join(OVERRIDABLE)}, configure, "
                            "or routing.<VN node>)")
        elif value not in OVERRIDABLE[key]:
            raise UserError(f"unknown {key} '{value}' (known: {', '.join(OVERRIDABLE[key])})")
        else:
            lab_wide[key] = value
    if not update:
        return topology
    if nodes:
        lab_wide["vn_nodes"] = {**topology.vn_nodes, **nodes}
    changed = topology.model_copy(update=lab_wide)
    problems = check_consistency(changed)
    if problems:
        raise UserError("; ".join(f"with {', '.join(f'{k}={v}' for k, v in update.items())}: {where}: {msg}"
                                  for where, msg in problems))
    return changed
