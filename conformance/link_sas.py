"""Each virtual link end's SAs as its node's kernel holds them."""
from __future__ import annotations


def link_end_sas(lab, kernel_ipsec):
    """(node, tunnel end, SAs of the link's two directions held by node)."""
    for node, tunnel in lab.active_link_ends():
        sad = kernel_ipsec[node]
        held = sad.between(tunnel.local_base, tunnel.remote_base) + sad.between(tunnel.remote_base, tunnel.local_base)
        yield node, tunnel, held
