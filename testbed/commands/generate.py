"""`iiptran generate`: write a lab file of N VN nodes (ring, grid, hub, random)."""
from __future__ import annotations

from pathlib import Path

from testbed.commands import Command
from testbed.topology.generate import NODES_PER_ROUTER, SHAPES


def arguments(p) -> None:
    p.add_argument("shape", choices=SHAPES)
    p.add_argument("--nodes", type=int, required=True, help="how many VN nodes")
    p.add_argument("--routers", type=int, help=f"base routers, in a ring (default: one per {NODES_PER_ROUTER} "
                                                "VN nodes, at least two)")
    p.add_argument("--seed", type=int, default=1, help="seed of the costs, flows and random edges (default 1)")
    p.add_argument("--degree", type=float, default=3.0, help="random: mean virtual links per node (default 3)")
    p.add_argument("--hubs", type=int, default=1, help="hub: 1, or 2 hubs every spoke is linked to (default 1)")
    p.add_argument("--no-bfd", action="store_true", help="no BFD on the virtual links (OSPF's dead interval alone)")
    p.add_argument("--out", type=Path, help="lab file to write (default topologies/generated/<name>.yaml)")


def run(args) -> int:
    from testbed.topology.generate import Request, write
    request = Request(args.shape, args.nodes, args.routers, args.seed, args.degree, args.hubs, not args.no_bfd)
    print(f"iiptran: wrote {write(request, args.out)}")
    return 0


COMMAND = Command("generate", "write a lab file of N VN nodes: ring, grid, hub (and spokes) or random", arguments, run,
                  place="here")
