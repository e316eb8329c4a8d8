"""Each virtual link end's SAs as its node's kernel holds them."""
from __future__ import annotations


def link_end_sas(lab, kernel_ipsec):
    """(node, tunnel end, SAs of the link's two directions held by node)."""
    for node, tunnel in lab.active_link_ends():
        # Keyed states only: an acquire's larval placeholder has no algorithm, mode or keys to judge.
        yield node, tunnel, kernel_ipsec[node].of_link(tunnel.local_base, tunnel.remote_base)
