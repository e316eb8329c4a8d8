"""Lab files for VNs bigger than the RFC's figures: ring, grid, hub-and-spoke
(one or two hubs) and seeded random graphs of N VN nodes, spread over a ring
of base routers.

Costs are drawn (seeded) from 10-19 so that shortest paths are unique, as
the suite's path checks require; flows are the longest unique path plus a
few seeded pairs, each with a unique path. The file says how it was made,
so the same command makes the same file.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

from pathlib import Path

import yaml

from testbed.errors import UserError
from testbed.topology.graph import Graph, NoPath, all_shortest_paths, is_connected

SHAPES = ("ring", "grid", "hub", "random")
MAX_NODES = 250          # one 192.168.<i>.0/24 LAN per node
NODES_PER_ROUTER = 8
EXTRA_FLOWS = 2


class GenerateError(UserError):
    """A request no lab file can satisfy (said in the user's terms)."""


@dataclass(frozen=True)
class Request:
    shape: str
    nodes: int
    routers: int | None = None      # default: one per NODES_PER_ROUTER VN nodes, at least 2
    seed: int = 1
    degree: float = 3.0             # random: mean virtual links per node
    hubs: int = 1                   # hub: one hub, or two dual-homing every spoke
    bfd: bool = True                # BFD on the virtual links (FAIL-BFD measures the failover)

    def check(self) -> None:
        if self.shape not in SHAPES:
            raise GenerateError(f"shape '{self.shape}' is not one of {', '.join(SHAPES)}")
        least = {"ring": 3, "grid": 4, "hub": self.hubs + 2, "random": 3}[self.shape]
        if not least <= self.nodes <= MAX_NODES:
            raise GenerateError(f"--nodes {self.nodes}: a {self.shape} needs {least} to {MAX_NODES} VN nodes")
        if self.routers is not None and not 1 <= self.routers <= 200:
            raise GenerateError(f"--routers {self.routers}: give 1 to 200 base routers")
        if self.hubs not in (1, 2):
            raise GenerateError(f"--hubs {self.hubs}: one or two hubs")
        if self.shape == "random" and not 2 <= self.degree < self.nodes - 1:
            raise GenerateError(f"--degree {self.degree}: a mean degree from 2 to below {self.nodes - 1}")

    @property
    def name(self) -> str:
        tail = {"hub": f"-h{self.hubs}", "random": f"-s{self.seed}"}.get(self.shape, "")
        return f"{self.shape}{self.nodes}{tail}"


def _edges(req: Request, rng: random.Random) -> list[tuple[int, int]]:
    n = req.nodes
    if req.shape == "ring":
        return [(i, (i + 1) % n) for i in range(n)]
    if req.shape == "grid":
        cols = math.ceil(math.sqrt(n))
        right = [(i, i + 1) for i in range(n - 1) if (i + 1) % cols]
        return right + [(i, i + cols) for i in range(n - cols)]
    if req.shape == "hub":
        hubs = list(range(req.hubs))
        return [(h, s) for s in range(req.hubs, n) for h in hubs] + ([(0, 1)] if req.hubs == 2 else [])
    order = list(range(n))            # random: a random spanning tree, then random chords
    rng.shuffle(order)
    edges = {tuple(sorted((order[i], order[rng.randrange(i)]))) for i in range(1, n)}
    wanted = min(round(n * req.degree / 2), n * (n - 1) // 2)
    while len(edges) < wanted:
        a, b = rng.sample(range(n), 2)
        edges.add(tuple(sorted((a, b))))
    return sorted(edges)


def _unique_path(graph: Graph, src: str, dst: str) -> list[str] | None:
    try:
        paths = all_shortest_paths(graph, src, dst)
    except NoPath:
        return None
    return paths[0] if len(paths) == 1 else None


def _flows(graph: Graph, names: list[str], rng: random.Random) -> dict[str, dict]:
    """The longest unique shortest path (by hops), then a few random pairs."""
    unique = {}
    for a in names:
        for b in names:
            if a < b and (path := _unique_path(graph, a, b)):
                unique[(a, b)] = path
    if not unique:
        raise GenerateError("no pair of VN nodes has a unique shortest path; try another --seed")
    longest = max(unique, key=lambda pair: (len(unique[pair]), pair))
    chosen = [longest]
    others = sorted(set(unique) - {longest})
    chosen += rng.sample(others, min(EXTRA_FLOWS, len(others)))
    return {f"f{i + 1}": {"src": a, "dst": b} for i, (a, b) in enumerate(chosen)}


def generate(req: Request) -> dict:
    """The lab file as a mapping (what `yaml.safe_dump` writes)."""
    req.check()
    rng = random.Random(req.seed)
    routers = [f"R{i + 1}" for i in range(req.routers or max(2, math.ceil(req.nodes / NODES_PER_ROUTER)))]
    base_links = [(routers[i], routers[(i + 1) % len(routers)]) for i in range(len(routers))]
    base_links = base_links[:1] if len(routers) == 2 else (base_links if len(routers) > 2 else [])
    names = [f"N{i + 1}" for i in range(req.nodes)]
    edges = _edges(req, rng)
    graph = Graph()
    links = []
    for index, (a, b) in enumerate(edges):
        cost = rng.randrange(10, 20)
        graph.add_edge(names[a], names[b], weight=cost)
        links.append({"ends": [names[a], names[b]], "subnet": _slash30("172.16", index), "cost": cost})
    if not is_connected(graph):
        raise GenerateError("the generated VN is not connected (a bug: please report the command)")
    return {
        "name": req.name,
        "description": f"generated: iiptran generate {req.shape} --nodes {req.nodes} --routers {len(routers)} "
                       f"--seed {req.seed}" + (f" --hubs {req.hubs}" if req.shape == "hub" else "")
                       + (f" --degree {req.degree}" if req.shape == "random" else "") + ("" if req.bfd else " --no-bfd"),
        "defaults": {"ospf": {"hello": 1, "dead": 4, "cost": 10}, "ipsec": {"algorithm": "rfc4106-gcm-aes"},
                     "tunnel": {"ttl": 99}, "bfd": {"enabled": req.bfd, "interval_ms": 200, "multiplier": 3}},
        "base": {"routers": routers,
                 "links": [{"ends": list(ends), "subnet": _slash30("10.0", i)} for i, ends in enumerate(base_links)]},
        "vn_nodes": {name: {"router": routers[i % len(routers)], "access": _slash30("10.1", i),
                            "lan": f"192.168.{i + 1}.0/24"} for i, name in enumerate(names)},
        "virtual_links": links,
        "flows": _flows(graph, names, rng),
    }


def _slash30(prefix16: str, index: int) -> str:
    return f"{prefix16}.{4 * index // 256}.{4 * index % 256}/30"


def to_yaml(lab: dict) -> str:
    header = f"# {lab['description']}\n"
    return header + yaml.safe_dump(lab, sort_keys=False, default_flow_style=None, width=120)


def write(req: Request, out: Path | None = None) -> Path:
    """Write the lab file (default topologies/generated/<name>.yaml) and
    check it as `validate` would; nothing is left behind when it fails."""
    from testbed.topology.loader import TOPOLOGY_DIR, load
    lab = generate(req)
    out = out or TOPOLOGY_DIR / "generated" / f"{lab['name']}.yaml"
    if out.suffix not in (".yaml", ".yml"):
        raise GenerateError(f"--out {out}: a lab file ends in .yaml")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial.yaml")
    partial.write_text(to_yaml(lab))
    try:
        load(str(partial))
    except UserError:
        partial.unlink()
        raise
    partial.rename(out)
    return out
