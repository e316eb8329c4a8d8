"""One virtual link with its two ends built differently (RFC 3884 3.1,
4.2.3: "IPsec tunnel mode and IIPtran are interoperable").

One end keeps the lab's construction; the other is rebuilt in the other
interface construction (iiptran <-> tunnel-interface), both with the same
fresh SA pair, so each end only knows its own side: ipip + transport SAs
selecting protocol 4, or an xfrm interface + tunnel SAs with any inner
traffic. The link's keying is asked to let go of it first (its SAs and
policies off both ends, whoever installed them) and to take it back
after (`restore`): manual keys get a fresh pair, an IKE-keyed link is
negotiated again.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from testbed.datapath import ipsec
from testbed.datapath.modes import MODES, Datapath

COUNTERPART = {"iiptran": "tunnel-interface", "tunnel-interface": "iiptran"}
REQID = 90            # the mixed link's own SA pair (IKE allocates its reqids from 1, manual keys from 100)


@dataclass
class MixedLink:
    node: str                  # the end rebuilt in the counterpart construction
    peer: str                  # the end that kept the lab's construction
    node_mode: Datapath
    peer_mode: Datapath
    sas: list = field(default_factory=list)       # (node -> peer, peer -> node)
    built: bool = False                           # the mixed ends are in place


def counterpart(lab) -> Datapath | None:
    name = COUNTERPART.get(lab.datapath.name)
    return MODES[name] if name else None


def plan(lab, node: str, peer: str) -> MixedLink:
    """The mix of `node`'s end of its link to `peer`, not yet made: its
    constructions and SA pair (of the algorithm and ICV length the link
    uses now, as the kernel holds them: the mix compares constructions,
    not algorithms)."""
    other = counterpart(lab)
    if other is None:
        raise ValueError(f"datapath {lab.datapath.name} has no interface construction to mix with")
    tunnel = lab.plan.nodes[node].tunnel_to(peer)
    held = lab.kernel_sad(node).between(tunnel.local_base, tunnel.remote_base)
    known = bool(held) and held[0].algorithm in ipsec.ALGORITHMS
    algorithm = held[0].algorithm if known else tunnel.algorithm
    sas = ipsec.link_sas(replace(tunnel, algorithm=algorithm), REQID, other.sa_mode, other.if_id(tunnel),
                         icv_bits=held[0].icv_bits if known else 0)
    return MixedLink(node, peer, other, lab.datapath, list(sas))


def _ends(lab, link: MixedLink):
    tunnel = lab.plan.nodes[link.node].tunnel_to(link.peer)
    peer_tunnel = lab.plan.nodes[link.peer].tunnel_to(link.node)
    out, back = link.sas
    return ((link.node_mode, link.node, tunnel, out, back), (link.peer_mode, link.peer, peer_tunnel, back, out))


def mix(lab, link: MixedLink) -> None:
    """The link out of its keying's hands, its devices gone, each end built
    its own way with the mixed pair."""
    tunnel = lab.plan.nodes[link.node].tunnel_to(link.peer)
    lab.keying.suspend(link.node, tunnel)
    for _, end, end_tunnel, *_ in _ends(lab, link):
        lab.datapath.remove_device(lab.context, end, end_tunnel)
    link.built = True
    for construction, end, end_tunnel, out, back in _ends(lab, link):
        construction.build_end(lab.context, end, end_tunnel, out, back)
    lab.routing.links_rebuilt(lab.context)


def restore(lab, link: MixedLink) -> None:
    """The link as the lab builds it, from whatever state the mix left it in
    (a mix that failed half-way included)."""
    if link.built:
        for construction, end, end_tunnel, out, back in _ends(lab, link):
            construction.remove_end(lab.context, end, end_tunnel, out, back)
        for _, end, end_tunnel, *_ in _ends(lab, link):
            lab.datapath.remove_device(lab.context, end, end_tunnel)
    lab.keying.restore(link.node, lab.plan.nodes[link.node].tunnel_to(link.peer))
    lab.routing.links_rebuilt(lab.context)
