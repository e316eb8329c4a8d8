"""A topology with lab-wide fields overridden (the command line's --mode,
--backend, --routing, --keying, --ike, --configure, a node's routing or IKE
daemon), checked as the file's own values are."""
from __future__ import annotations

from pathlib import Path

from testbed.errors import UserError
from testbed.topology.loader import check_consistency, configure_problem
from testbed.topology.model import NODE_OVERRIDABLE, OVERRIDABLE, Topology


def with_overrides(topology: Topology, overrides: dict[str, str] | None = None) -> Topology:
    """The topology with lab-wide fields overridden (CLI flags: --mode,
    --backend, --routing, --keying, --ike, --configure), nodes' routing or
    IKE daemon (`routing.A=bird`, `ike.A=libreswan`), checked as the file's
    own values are."""
    update = {key: value for key, value in (overrides or {}).items() if value is not None}
    nodes, lab_wide = {}, {}
    for key, value in update.items():
        field, _, node = key.partition(".")
        if node and field in NODE_OVERRIDABLE:
            if node not in topology.vn_nodes:
                raise UserError(f"'{key}': no VN node '{node}' (known: {', '.join(topology.vn_nodes)})")
            if value not in NODE_OVERRIDABLE[field]:
                raise UserError(f"unknown {field} '{value}' for node {node} "
                                f"(known: {', '.join(NODE_OVERRIDABLE[field])})")
            nodes[node] = nodes.get(node, topology.vn_nodes[node]).model_copy(update={field: value})
        elif key == "configure":
            lab_wide[key] = str(Path(value).resolve())       # a path given here is relative to here
            problem = configure_problem(Path(lab_wide[key]))
            if problem:
                raise UserError(f"configure={value}: {problem}")
        elif key not in OVERRIDABLE:
            raise UserError(f"'{key}' cannot be overridden (only {', '.join(OVERRIDABLE)}, configure, "
                            "routing.<VN node> or ike.<VN node>)")
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
