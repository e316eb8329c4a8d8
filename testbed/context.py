"""What the lower layers (datapath, routing, keying) get of a lab: its name
and model, where its nodes live, where it keeps its state, which nodes are
members now, and two callbacks (save the lab's state; a manually keyed
link's SA pair). They never see the Lab itself (testbed/lab.py), which
composes them."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from testbed.runtime.base import Runtime
    from testbed.sa import SecurityAssociation
    from testbed.topology.model import Topology
    from testbed.topology.plan import LabPlan, TunnelEnd


def _nothing() -> None:
    return None


@dataclass
class LabContext:
    name: str
    topology: "Topology"
    plan: "LabPlan"
    runtime: "Runtime"
    state_dir: Path
    topology_path: Path = Path()
    joined: set[str] = field(default_factory=set)        # detached nodes that have joined
    links: set[str] = field(default_factory=set)         # labels of the virtual links built
    save: Callable[[], None] = _nothing                   # the lab's state written again
    # (out, in) SA pair of a manually keyed link, seen from its first node
    link_sas: Callable[[str, str], tuple["SecurityAssociation", "SecurityAssociation"]] | None = None

    def active(self, node: str) -> bool:
        return not self.plan.nodes[node].detached or node in self.joined

    def active_vn_nodes(self) -> list[str]:
        return [n.name for n in self.plan.vn_nodes if self.active(n.name)]

    def active_link_ends(self) -> list[tuple[str, "TunnelEnd"]]:
        """(node, tunnel end) of every virtual link whose two ends are active."""
        return [(node, tunnel) for node in self.active_vn_nodes()
                for tunnel in self.plan.nodes[node].tunnels if self.active(tunnel.peer)]

    def first_ends(self, keying: str | None = None) -> list[tuple[str, "TunnelEnd"]]:
        """(node, tunnel end) of every active link, once per link (its first
        end in the topology), optionally only those keyed by `keying`."""
        return [(node, t) for node, t in self.active_link_ends()
                if self.topology.virtual_links[t.link_index].ends[0] == node and keying in (None, t.keying)]

    @property
    def datapath(self):
        from testbed.datapath.modes import MODES
        return MODES[self.topology.datapath]
