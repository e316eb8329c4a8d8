"""One virtual link with its two ends built differently (RFC 3884 3.1,
4.2.3: "IPsec tunnel mode and IIPtran are interoperable").

One end keeps the lab's construction; the other is rebuilt in the other
interface construction (iiptran <-> tunnel-interface), both with the same
fresh SA pair, so each end only knows its own side: ipip + transport SAs
selecting protocol 4, or an xfrm interface + tunnel SAs with any inner
traffic. `restore` puts the link back as the lab built it. A link keyed by
IKE is taken out of IKE's hands for the mix (the two constructions cannot
negotiate one CHILD_SA: one wants transport mode, the other tunnel mode)
and given back to IKE by `restore`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from testbed.datapath import ipsec
from testbed.datapath.modes import MODES, Datapath

COUNTERPART = {"iiptran": "tunnel-interface", "tunnel-interface": "iiptran"}
REQID = 90            # the mixed link's hand-made SA pair (IKE allocates its own reqids from 1)


@dataclass
class MixedLink:
    node: str                  # the end rebuilt in the counterpart construction
    peer: str                  # the end that kept the lab's construction
    node_mode: Datapath
    peer_mode: Datapath
    sas: list                  # (node -> peer, peer -> node)


def _rebuild(lab, node: str, peer: str, becomes: tuple[Datapath, Datapath]) -> list:
    """Tear both ends of the link down, whichever construction each has now
    (what is already gone is skipped), and build them again, each its own
    way, with a fresh SA pair."""
    tunnel, peer_tunnel = lab.plan.nodes[node].tunnel_to(peer), lab.plan.nodes[peer].tunnel_to(node)
    if tunnel.keying == "manual" or any(sa.link == tunnel.label for sa in lab.sas):
        out, back = lab.installed_link_sas(node, peer)
    else:
        out, back = ipsec.link_sas(tunnel, REQID)       # nothing installed by hand yet: removals find nothing
    # The same algorithm the link uses now, as the kernel holds it: the mix
    # compares constructions, not algorithms.
    held = lab.kernel_sad(node).between(tunnel.local_base, tunnel.remote_base)
    algorithm = held[0].algorithm if held and held[0].algorithm in ipsec.ALGORITHMS else tunnel.algorithm
    # Whatever each end is now: the lab's construction or its counterpart.
    for construction in {lab.datapath, *becomes, *filter(None, [counterpart(lab)])}:
        construction.remove_end(lab, node, tunnel, out, back)
        construction.remove_end(lab, peer, peer_tunnel, back, out)
    new_out, new_back = ipsec.link_sas(replace(tunnel, algorithm=algorithm), out.reqid, becomes[0].sa_mode,
                                       becomes[0].if_id(tunnel))
    lab.sas = [sa for sa in lab.sas if sa not in (out, back)] + [new_out, new_back]
    lab.save()
    becomes[0].build_end(lab, node, tunnel, new_out, new_back)
    becomes[1].build_end(lab, peer, peer_tunnel, new_back, new_out)
    lab.routing.links_rebuilt(lab)
    return [new_out, new_back]


def counterpart(lab) -> Datapath | None:
    name = COUNTERPART.get(lab.datapath.name)
    return MODES[name] if name else None


def mix(lab, node: str, peer: str) -> MixedLink:
    """Rebuild `node`'s end of its link to `peer` in the counterpart construction."""
    other = counterpart(lab)
    if other is None:
        raise ValueError(f"datapath {lab.datapath.name} has no interface construction to mix with")
    tunnel = lab.plan.nodes[node].tunnel_to(peer)
    if tunnel.keying == "ikev2":
        lab.ike.suspend(node, tunnel)
    sas = _rebuild(lab, node, peer, (other, lab.datapath))
    return MixedLink(node, peer, other, lab.datapath, sas)


def restore(lab, node: str, peer: str) -> None:
    """The link as the lab builds it, from whatever state it is in (a mix
    that failed half-way included)."""
    out, back = _rebuild(lab, node, peer, (lab.datapath, lab.datapath))
    tunnel = lab.plan.nodes[node].tunnel_to(peer)
    if tunnel.keying == "ikev2":
        # Back to IKE: the manual SAs and policies go, the devices stay.
        for end, end_tunnel, mine, theirs in ((node, tunnel, out, back),
                                              (peer, lab.plan.nodes[peer].tunnel_to(node), back, out)):
            lines = [line for line in lab.datapath.end_batch(end_tunnel, mine, theirs)]
            ipsec.apply_batch(lab.runtime, end, ipsec.removal(lines), missing_ok=True)
        lab.sas = [sa for sa in lab.sas if sa not in (out, back)]
        lab.save()
        lab.ike.establish([(node, tunnel)])
