"""Manual keys: the testbed writes a fresh random SA pair per virtual link
(transport mode, or the lab's datapath's mode) with `ip xfrm`, both ends
of each node in one batch, nodes side by side. The pairs are remembered
(the lab's 0700 state folder) to take them down again, to hand them to a
node's configuration program, and for faults; the checks never judge by
them, only by what the kernels hold."""
from __future__ import annotations

from testbed.datapath import ipsec
from testbed.errors import UserError
from testbed.keying import Keying
from testbed.sa import SecurityAssociation
from testbed.topology.plan import TunnelEnd

REQID_BASE = 100


class ManualKeying(Keying):
    name = "manual"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.sas: list[SecurityAssociation] = []

    def provision(self, links, leave=frozenset()):
        ends = [(node, tunnel, self.ctx.plan.nodes[tunnel.peer].tunnel_to(node), REQID_BASE + 2 * tunnel.link_index)
                for node, tunnel in links]
        self.sas += self.ctx.datapath.provision_links(self.ctx, ends, leave=leave)
        self.ctx.save()

    def installed(self, node: str, peer: str) -> tuple[SecurityAssociation, SecurityAssociation]:
        """The pair installed on the link node-peer, seen from node: (out, in)."""
        tunnel = self.ctx.plan.nodes[node].tunnel_to(peer)
        by_endpoints = {(sa.src, sa.dst): sa for sa in self.sas}
        try:
            return by_endpoints[(tunnel.local_base, tunnel.remote_base)], \
                by_endpoints[(tunnel.remote_base, tunnel.local_base)]
        except KeyError:
            raise UserError(f"virtual link {tunnel.label} ({node}-{peer}) has no manually keyed SAs") from None

    def link_pair(self, node, tunnel):
        return self.installed(node, tunnel.peer)

    def replace(self, old: tuple[SecurityAssociation, ...], new: tuple[SecurityAssociation, ...]) -> None:
        """A link's pair changed (a fault re-keyed it)."""
        self.sas = [sa for sa in self.sas if sa not in old] + list(new)
        self.ctx.save()

    def suspend(self, node, tunnel):
        out, back = self.installed(node, tunnel.peer)
        for end, end_tunnel, mine, theirs in self._ends(node, tunnel, out, back):
            ipsec.apply_batch(self.ctx.runtime, end, ipsec.removal(self.ctx.datapath.end_batch(end_tunnel, mine, theirs)),
                              missing_ok=True)
        self.replace((out, back), ())

    def restore(self, node, tunnel):
        """A fresh pair, both ends built again the lab's way."""
        out, back = ipsec.link_sas(tunnel, REQID_BASE + 2 * tunnel.link_index, self.ctx.datapath.sa_mode,
                                   self.ctx.datapath.if_id(tunnel))
        for end, end_tunnel, mine, theirs in self._ends(node, tunnel, out, back):
            self.ctx.datapath.build_end(self.ctx, end, end_tunnel, mine, theirs)
        self.replace((), (out, back))

    def _ends(self, node: str, tunnel: TunnelEnd, out, back):
        peer_tunnel = self.ctx.plan.nodes[tunnel.peer].tunnel_to(node)
        return ((node, tunnel, out, back), (tunnel.peer, peer_tunnel, back, out))

    def state(self):
        return {"sas": [sa.as_dict() for sa in self.sas]}

    def load(self, state):
        self.sas = [SecurityAssociation(**sa) for sa in state.get("sas", [])]
