"""Read a lab file into a validated Topology, or fail naming file and field."""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from testbed import yamlfile
from testbed.errors import TopologyError
from testbed.topology.graph import Graph, is_connected
from testbed.topology.model import Topology, node_configure

TOPOLOGY_DIR = Path(__file__).resolve().parents[2] / "topologies"


def resolve_path(name_or_path: str) -> Path:
    """'fig6' means topologies/fig6.yaml; anything else is a path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml") and not path.exists():
        path = TOPOLOGY_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise TopologyError(f"{name_or_path}: no such topology file (looked for {path})")
    return path


def _where(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def load(name_or_path: str) -> Topology:
    path = resolve_path(name_or_path)
    try:
        raw = yamlfile.parse(path.read_text())
    except yaml.YAMLError as exc:
        raise TopologyError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise TopologyError(f"{path}: expected a mapping at the top level")
    try:
        topology = Topology.model_validate(raw)
    except ValidationError as exc:
        problems = [f"{path}: {_where(e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise TopologyError("\n".join(problems)) from None
    problems = [f"{path}: {where}: {msg}" for where, msg in check_consistency(topology) + hook_problems(topology, path)]
    if problems:
        raise TopologyError("\n".join(problems))
    return topology


def configure_path(topology_path: Path, value: str) -> Path:
    """A configuration program as the lab file names it, relative to the file."""
    given = Path(value)
    return given if given.is_absolute() else (topology_path.parent / given).resolve()


def configure_problem(found: Path) -> str | None:
    """Why `found` cannot be run as a configuration program, or None."""
    if not found.is_file():
        return f"no such file {found}"
    if not os.access(found, os.X_OK):
        return f"{found} is not executable (chmod +x)"
    return None


def hook_problems(t: Topology, path: Path) -> list[tuple[str, str]]:
    """The hooks a lab file names (relative to the file at `path`) that cannot be run."""
    named = [("configure", t.configure)] + [(f"vn_nodes.{n}.configure", v.configure) for n, v in t.vn_nodes.items()]
    return [(where, problem) for where, value in named
            if value is not None and (problem := configure_problem(configure_path(path, value)))]


LIBRESWAN_DOCKER = "libreswan runs on the namespace backend only (the node image carries strongSwan alone)"


def check_consistency(t: Topology) -> list[tuple[str, str]]:
    """Cross-field rules the per-field models cannot see."""
    problems: list[tuple[str, str]] = []
    routers = set(t.base.routers)
    if len(routers) != len(t.base.routers):
        problems.append(("base.routers", "a router is listed twice"))
    for name in t.vn_nodes:
        if name in routers:
            problems.append((f"vn_nodes.{name}", "name is already used by a base router"))
    for i, link in enumerate(t.base.links):
        for end in link.ends:
            if end not in routers:
                problems.append((f"base.links.{i}.ends", f"unknown base router '{end}'"))
    if t.ike == "libreswan" and t.backend == "docker":
        problems.append(("ike", LIBRESWAN_DOCKER))
    for name, node in t.vn_nodes.items():
        if node.router not in routers:
            problems.append((f"vn_nodes.{name}.router", f"unknown base router '{node.router}'"))
        if node.routing and t.routing == "static":
            problems.append((f"vn_nodes.{name}.routing", f"names an OSPF daemon ({node.routing}) in a lab "
                                                         f"routed statically; set the lab's routing to frr or bird"))
        if node.ike == "libreswan" and t.backend == "docker":
            problems.append((f"vn_nodes.{name}.ike", LIBRESWAN_DOCKER))
    pairs: set[frozenset[str]] = set()
    labels: set[str] = set()
    for i, link in enumerate(t.virtual_links):
        label = link.label or "-".join(link.ends)
        if label in labels:
            problems.append((f"virtual_links.{i}.label", f"label '{label}' is used by another virtual link"))
        labels.add(label)
        for end in link.ends:
            if end not in t.vn_nodes:
                problems.append((f"virtual_links.{i}.ends", f"unknown VN node '{end}'"))
        pair = frozenset(link.ends)
        if pair in pairs:
            problems.append((f"virtual_links.{i}.ends",
                             "a second virtual link between the same two nodes (IPIP cannot tell them apart)"))
        pairs.add(pair)
    for flow_name, flow in t.flows.items():
        for field in ("src", "dst"):
            if getattr(flow, field) not in t.vn_nodes:
                problems.append((f"flows.{flow_name}.{field}", f"unknown VN node '{getattr(flow, field)}'"))
    for i, link in enumerate(t.virtual_links):
        hooked = [end for end in link.ends if end in t.vn_nodes and node_configure(t, end)]
        if hooked and t.datapath != "iiptran":
            problems.append((f"virtual_links.{i}.ends", f"{', '.join(hooked)} configure themselves (a hook), which "
                                                        f"builds IIPtran links; datapath '{t.datapath}' cannot apply"))
        if (link.keying or t.keying) == "ikev2" and hooked:
            problems.append((f"virtual_links.{i}.keying", f"{', '.join(hooked)} configure themselves (a hook): "
                                                          "their links are keyed manually, with the plan's keys"))
        if (link.keying or t.keying) == "ikev2" and t.datapath != "iiptran":
            problems.append((f"virtual_links.{i}.keying", f"IKEv2 keying builds IIPtran links; datapath "
                                                          f"'{t.datapath}' is keyed manually only"))
    problems += _overlaps(t)
    graph = Graph()
    for router in t.base.routers:
        graph.add_node(router)
    for link in t.base.links:
        if set(link.ends) <= routers:
            graph.add_edge(*link.ends)
    if routers and not is_connected(graph):
        problems.append(("base.links", "the base routers do not form one connected network"))
    return problems


def _overlaps(t: Topology) -> list[tuple[str, str]]:
    subnets: list[tuple[str, ipaddress.IPv4Network]] = []
    subnets += [(f"base.links.{i}.subnet", ipaddress.IPv4Network(link.subnet))
                for i, link in enumerate(t.base.links)]
    for name, node in t.vn_nodes.items():
        subnets.append((f"vn_nodes.{name}.access", ipaddress.IPv4Network(node.access)))
        subnets.append((f"vn_nodes.{name}.lan", ipaddress.IPv4Network(node.lan)))
    subnets += [(f"virtual_links.{i}.subnet", ipaddress.IPv4Network(link.subnet))
                for i, link in enumerate(t.virtual_links)]
    problems = []
    for i, (where, net) in enumerate(subnets):
        for other_where, other in subnets[:i]:
            if net.overlaps(other):
                problems.append((where, f"{net} overlaps {other_where} ({other})"))
    return problems
