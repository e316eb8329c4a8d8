"""Who installs a virtual link's SAs and policies: the third way a lab
varies, beside its datapath (testbed/datapath/modes.py) and its routing
(testbed/routing/stacks.py), chosen per virtual link as routing is per node.

- manual: the testbed writes a fresh random SA pair per link (manual.py);
- ikev2: an IKE daemon per VN node negotiates them (ikev2.py; the daemon,
  strongSwan today, is a choice inside it).

A strategy owns a link's IPsec from bring-up (`provision`, which builds the
link's devices through the datapath too) to teardown (`stop_lab`), can take
it out of its hands and give it back (`suspend`/`restore`, for a check
that rebuilds the link another way), keeps its own state across processes
(`state`/`load`) and tells what its daemons report (`daemon_view`). A new
keying is a new module registering a Keying in KEYINGS.
"""
from __future__ import annotations

from pathlib import Path

from testbed.context import LabContext
from testbed.errors import UserError
from testbed.runtime.base import Runtime
from testbed.topology.plan import TunnelEnd

Link = tuple[str, TunnelEnd]          # (a node, its end of the virtual link)


class Keying:
    name = ""

    def __init__(self, ctx: LabContext):
        self.ctx = ctx

    def provision(self, links: list[Link], leave: frozenset[str] = frozenset()) -> None:
        """Devices and IPsec for both ends of each link; the nodes in `leave`
        configure themselves (a user's configuration program)."""
        raise NotImplementedError

    def link_pair(self, node: str, tunnel: TunnelEnd):
        """The (out, in) SA pair the testbed keyed the link with, seen from node."""
        raise UserError(f"virtual link {tunnel.label} is keyed by {self.name}: its SAs are negotiated, "
                        "none is the testbed's")

    def suspend(self, node: str, tunnel: TunnelEnd) -> None:
        """Take the link's SAs and policies off both ends (its devices stay)."""
        raise NotImplementedError

    def restore(self, node: str, tunnel: TunnelEnd) -> None:
        """Give the link its SAs and policies again (its devices built anew)."""
        raise NotImplementedError

    def state(self) -> dict:
        """What the strategy must remember across processes (keys stay in the 0700 state folder)."""
        return {}

    def load(self, state: dict) -> None:
        """The state of an earlier process (a lab re-attached)."""

    def daemon_nodes(self) -> list[str]:
        """The nodes whose keying daemon the checks may ask."""
        return []

    def daemon_view(self, node: str) -> list[str]:
        """What the node's daemon reports, one line per SA: what a rekey or a
        renegotiation would change."""
        return []

    def keep_logs(self, folder: Path) -> None:
        """The daemons' logs beside a report."""

    def negotiated(self, node: str, tunnel: TunnelEnd) -> list | None:
        """What the node's keying daemon reports it negotiated for the link:
        its IKE_SAs with their CHILD_SAs (testbed/keying/negotiated.py), or
        None where nothing is negotiated (manual keys)."""
        return None

    @staticmethod
    def stop_lab(runtime: Runtime, state_dir: Path) -> None:
        """Stop whatever runs for the lab, knowing only where it lives (also after a crash)."""


def registry() -> dict[str, type[Keying]]:
    from testbed.keying.ikev2 import Ikev2Keying
    from testbed.keying.manual import ManualKeying
    return {strategy.name: strategy for strategy in (ManualKeying, Ikev2Keying)}


KEYINGS: dict[str, type[Keying]] = registry()


class LinkKeyings(Keying):
    """A lab's keying: each link's own strategy (a lab may mix them)."""
    name = "per link"

    def __init__(self, ctx: LabContext):
        super().__init__(ctx)
        used = sorted({link.keying or ctx.topology.keying for link in ctx.topology.virtual_links})
        self.strategies = {name: KEYINGS[name](ctx) for name in used}

    def of(self, name: str) -> Keying | None:
        """The strategy keying some of the lab's links this way, if any does."""
        return self.strategies.get(name)

    def _by_keying(self, links: list[Link]) -> dict[str, list[Link]]:
        found: dict[str, list[Link]] = {}
        for node, tunnel in links:
            found.setdefault(tunnel.keying, []).append((node, tunnel))
        return found

    def provision(self, links, leave=frozenset()):
        for name, mine in self._by_keying(links).items():
            self.strategies[name].provision(mine, leave)

    def link_pair(self, node, tunnel):
        return self.strategies[tunnel.keying].link_pair(node, tunnel)

    def suspend(self, node, tunnel):
        self.strategies[tunnel.keying].suspend(node, tunnel)

    def restore(self, node, tunnel):
        self.strategies[tunnel.keying].restore(node, tunnel)

    def state(self):
        return {name: strategy.state() for name, strategy in self.strategies.items()}

    def load(self, state):
        for name, strategy in self.strategies.items():
            strategy.load(state.get(name, {}))

    def daemon_nodes(self):
        return sorted({n for strategy in self.strategies.values() for n in strategy.daemon_nodes()})

    def daemon_view(self, node):
        return [line for strategy in self.strategies.values() for line in strategy.daemon_view(node)]

    def keep_logs(self, folder):
        for strategy in self.strategies.values():
            strategy.keep_logs(folder)

    def negotiated(self, node, tunnel):
        return self.strategies[tunnel.keying].negotiated(node, tunnel)

    @staticmethod
    def stop_lab(runtime, state_dir):
        for strategy in KEYINGS.values():
            strategy.stop_lab(runtime, state_dir)
