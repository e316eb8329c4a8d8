"""IKEv2-keyed virtual links: per link one IKE_SA between the two base
addresses and one CHILD_SA in transport mode whose traffic selectors are
IP protocol 4 between those two addresses, nothing wider (RFC 3884 3, 4.2.4;
RFC 4301 4.4.1). The link's first end in the topology initiates
(start_action=start, so a restarted daemon negotiates again by itself);
the other answers. Authentication: certificates of the lab's own CA, or a
pre-shared key. The ipip devices, VN addresses and routing are the lab's
as for manual keys; only SAs and policies come from IKE, over block
policies of the lowest precedence that keep a link from carrying IPIP in
clear while no CHILD_SA protects it (fail closed), and nothing else.

A negative profile hands the strategy a typed description of what to get
wrong (IkeFaults, built by testbed/faults/ike.py); a check may configure
one link's first end the conventional way (RFC 3884 4.2.4) for a while.
What each end must negotiate is decided here (LinkConfig); the daemon that
negotiates it is an IKE implementation (testbed/keying/ike_daemon.py).
"""
from __future__ import annotations

import secrets
import signal
from dataclasses import dataclass

from testbed.datapath import ipsec
from testbed.errors import TestbedError, WaitTimeout
from testbed.keying import Keying, pki
from testbed.keying.ike_daemon import IkeDaemon, LinkConfig, implementations
from testbed.keying.negotiated import INSTALLED, IkeSaView
from testbed.parallel import parallel
from testbed.sa import IPPROTO_IPIP
from testbed.topology.model import node_ike
from testbed.topology.plan import TunnelEnd
from testbed.wait import wait_for

ESTABLISH_TIMEOUT = 45.0
IKE_GROUP = 19               # RFC 8247 2.4: ECP 256, SHOULD; the CHILD_SAs' PFS group as well
DPD_DELAY_S = 2              # a peer silent this long is asked whether it is alive
REPLAY_WINDOW = 32


def conn_name(tunnel: TunnelEnd) -> str:
    return f"link-{tunnel.label}"


@dataclass(frozen=True)
class LinkEnd:
    node: str
    tunnel: TunnelEnd
    initiator: bool


@dataclass(frozen=True)
class IkeFaults:
    """What a negative profile has the daemons get wrong (nothing, by default)."""
    child_mode: str = "transport"        # the CHILD_SA's mode
    wide_selectors: bool = False         # selectors without the protocol
    no_shunts: bool = False              # no fail-closed block policies
    wide_shunts: bool = False            # the block policies over all traffic between the two ends, not IPIP
    auth: str | None = None              # another authentication than the lab's
    wrong_psk: str | None = None         # this node holds other pre-shared keys
    untrusted: str | None = None         # this node's certificate is from a rogue CA
    ike_group: int | None = None         # another Diffie-Hellman group for the IKE_SA than the lab's
    no_pfs: bool = False                 # CHILD_SA rekeys without a Diffie-Hellman exchange
    child_life: tuple[int, int] | None = None   # the CHILD_SA's (rekey_time, life_time); rekey 0: never
    rekey_restarts: bool = False         # a rekey closes the CHILD_SA, then negotiates a new one (break before make)
    dpd_clear: bool = False              # a dead peer's SAs are cleared on both ends: nobody negotiates again
    restart_bare: bool = False           # a restarted daemon comes back without its links: nobody loads them again
    restart_flushed: bool = False        # the killed daemon's SAs removed before it starts again (as a supervisor might)


class Ikev2Keying(Keying):
    name = "ikev2"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.folder = ctx.state_dir
        self.marks: dict[str, int] = {}      # daemon log lines seen before the current negotiation
        self.faults = IkeFaults()
        self.conventional: set[str] = set()  # links whose first end is configured conventionally
        self.daemons: dict[str, IkeDaemon] = {}

    def daemon(self, node: str) -> IkeDaemon:
        """The IKE implementation running on the node (the lab's `ike`, or the node's own)."""
        kind = node_ike(self.ctx.topology, node)
        if kind not in self.daemons:
            self.daemons[kind] = implementations()[kind](self.ctx.runtime, self.folder)
        return self.daemons[kind]

    def dead_peer_after(self) -> float:
        """Seconds of silence after which the lab's daemons declare a peer
        dead: the DPD delay, then the retransmissions of the probe."""
        return max((self.daemon(n).dead_peer_after(DPD_DELAY_S) for n in self.daemon_nodes()), default=DPD_DELAY_S)

    def misconfigure(self, faults: IkeFaults) -> None:
        """What the daemons are told from now on (a negative profile, before bring-up)."""
        self.faults = faults

    def configure_conventionally(self, tunnel: TunnelEnd, on: bool) -> None:
        """RFC 3884 4.2.4's conventional peer on the link's first end: tunnel
        mode, the two ends' VN-local prefixes as selectors (takes effect at
        the link's next negotiation)."""
        (self.conventional.add if on else self.conventional.discard)(tunnel.label)

    @property
    def auth(self) -> str:
        return self.faults.auth or self.ctx.topology.defaults.ike.auth

    # -- configuration ------------------------------------------------------
    def ends(self, node: str, tunnel: TunnelEnd) -> list[LinkEnd]:
        first = self.ctx.topology.virtual_links[tunnel.link_index].ends[0]
        peer_tunnel = self.ctx.plan.nodes[tunnel.peer].tunnel_to(node)
        return [LinkEnd(node, tunnel, first == node), LinkEnd(tunnel.peer, peer_tunnel, first == tunnel.peer)]

    def psk(self, tunnel: TunnelEnd) -> str:
        """The link's pre-shared key, made once and kept in the lab's 0700 state folder."""
        folder = self.folder / "ike" / "psk"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / conn_name(tunnel)
        if not path.exists():
            path.write_text(secrets.token_hex(24))
            path.chmod(0o600)
        return path.read_text()

    def link_config(self, end: LinkEnd) -> LinkConfig:
        """What this end of the link must negotiate (the lab's settings and any fault)."""
        tunnel, ike, faults = end.tunnel, self.ctx.topology.defaults.ike, self.faults
        local_ts, remote_ts = (f"{tunnel.local_base}/32",), (f"{tunnel.remote_base}/32",)
        mode, protocol = faults.child_mode, 0 if faults.wide_selectors else IPPROTO_IPIP
        if tunnel.label in self.conventional and end.initiator:
            # RFC 3884 4.2.4's conventional peer: tunnel mode with the VN prefixes as selectors.
            mode, protocol = "tunnel", 0
            local_ts = (self.ctx.plan.nodes[end.node].lan_prefix,)
            remote_ts = (self.ctx.plan.nodes[tunnel.peer].lan_prefix,)
        rekey_s, life_s = faults.child_life or (ike.rekey_time, None)
        psk = None
        if self.auth == "psk":
            psk = self.psk(tunnel)
            if faults.wrong_psk == end.node:
                psk = "not-" + psk
        return LinkConfig(
            name=conn_name(tunnel), local=tunnel.local_base, remote=tunnel.remote_base, initiator=end.initiator,
            mode=mode, local_ts=local_ts, remote_ts=remote_ts, protocol=protocol, esp=tunnel.algorithm,
            pfs_group=IKE_GROUP if ike.pfs and not faults.no_pfs else None, rekey_s=rekey_s, life_s=life_s,
            replay_window=REPLAY_WINDOW, ike_group=faults.ike_group or IKE_GROUP, ike_rekey_s=ike.ike_rekey_time,
            dpd_delay_s=DPD_DELAY_S, dpd_clear=faults.dpd_clear, auth=self.auth, psk=psk)

    def _credentials(self, nodes: list[str]) -> dict[str, pki.Credentials]:
        if self.auth == "psk":
            return {}
        folder = self.folder / "ike" / "pki"
        addresses = {n: self.ctx.plan.nodes[n].base_address for n in nodes}
        found = pki.lab_credentials(folder, addresses)
        untrusted = self.faults.untrusted
        if untrusted in found:
            # One node's certificate from a CA its peers do not know.
            found[untrusted] = pki.lab_credentials(folder / "rogue", {untrusted: addresses[untrusted]},
                                                   ca_name="rogue")[untrusted]
        return found

    def _load(self, node: str, ends: list[LinkEnd], credentials: dict[str, pki.Credentials]) -> None:
        """Credentials (the lab's CA as trust anchor, the node's key) and the links' connections."""
        trusted = _lab_ca(self.folder) if node in credentials else None
        self.daemon(node).load(node, [self.link_config(end) for end in ends], credentials.get(node), trusted)

    # -- the strategy ---------------------------------------------------------
    def provision(self, links, leave=frozenset()):
        for node, tunnel in links:
            self.ctx.datapath.build_devices(self.ctx, node, tunnel, self.ctx.plan.nodes[tunnel.peer].tunnel_to(node))
        self.establish(links)

    def restore(self, node, tunnel):
        self.ctx.datapath.build_devices(self.ctx, node, tunnel, self.ctx.plan.nodes[tunnel.peer].tunnel_to(node))
        self.establish([(node, tunnel)])

    def daemon_nodes(self):
        return sorted({n for first, t in self.ctx.first_ends(self.name) for n in (first, t.peer)})

    def daemon_view(self, node):
        return self.snapshot(node) if node in self.daemon_nodes() else []

    @staticmethod
    def stop_lab(runtime, state_dir):
        for daemon in implementations().values():
            daemon.stop_lab(runtime, state_dir)

    # -- lifecycle ------------------------------------------------------------
    def establish(self, links: list[tuple[str, TunnelEnd]]) -> None:
        """Start the daemons the links need, load the links, wait until each
        link's CHILD_SA is installed on both ends (or say why it is not)."""
        ends = [end for node, tunnel in links for end in self.ends(node, tunnel)]
        nodes = sorted({end.node for end in ends})
        parallel([lambda n=n: self.daemon(n).start(n) for n in nodes if not self.daemon(n).running(n)])
        self.marks = {n: len(self.daemon(n).log_lines(n)) for n in nodes}
        credentials = self._credentials(nodes)
        shunts = {n: [line for e in ends if e.node == n and not self.faults.no_shunts
                      for line in ipsec.block_shunts(e.tunnel.local_base, e.tunnel.remote_base,
                                                     everything=self.faults.wide_shunts)] for n in nodes}
        parallel([lambda n=n: ipsec.apply_batch(self.ctx.runtime, n, shunts[n]) for n in nodes if shunts[n]])
        # Responders first, so that an initiator's first message finds its peer ready.
        for initiators in (False, True):
            parallel([lambda n=n: self._load(n, [e for e in ends if e.node == n and e.initiator == initiators],
                                             credentials) for n in nodes])
        for node, tunnel in links:
            self.wait_installed(node, tunnel)

    def suspend(self, node: str, tunnel: TunnelEnd) -> None:
        """Take one link out of IKE's hands: its IKE_SA closed (the CHILD_SA's
        SAs and policies go with it) and its connection unloaded on both ends."""
        ends = self.ends(node, tunnel)
        initiator = next(end for end in ends if end.initiator)
        if self.negotiated(initiator.node, initiator.tunnel):   # the daemons may have cleared it already
            self.daemon(initiator.node).close(initiator.node, conn_name(tunnel))
        for end in ends:
            self.daemon(end.node).unload(end.node, conn_name(end.tunnel))

    def restart(self, node: str, sig: int) -> None:
        """The node's daemon killed (with `sig`) and started again, its links
        loaded again (unless a profile says nobody loads them)."""
        self.daemon(node).kill(node, sig)
        self.start_again(node, flushed=self.faults.restart_flushed, loaded=not self.faults.restart_bare)

    def crash(self, node: str) -> None:
        """The node's daemon killed with SIGKILL and left dead: the kernel keeps its SAs and policies."""
        self.daemon(node).kill(node, signal.SIGKILL)

    def start_again(self, node: str, flushed: bool = False, loaded: bool = True) -> None:
        """The node's killed daemon started again, as a supervisor would: with
        `flushed`, its predecessor's SAs deleted first; with `loaded`, its
        links loaded again. The profiles' restart faults set them for
        IKE-RESTART's restart only: a check that crashes a daemon and starts
        it again to put the lab back wants it whole."""
        daemon = self.daemon(node)
        if flushed:
            # One `ip` per direction: in an `ip -batch`, deleteall removed nothing (seen in the guest).
            for tunnel in self.ctx.plan.nodes[node].tunnels:
                if tunnel.keying == self.name:
                    for src, dst in ((tunnel.local_base, tunnel.remote_base), (tunnel.remote_base, tunnel.local_base)):
                        self.ctx.runtime.run(node, ["ip", "xfrm", "state", "deleteall", "src", src, "dst", dst],
                                             check=True, net_only=True)
        daemon.start(node)
        self.marks[node] = len(daemon.log_lines(node))
        if loaded:
            self.reload(node)

    def reload(self, node: str) -> None:
        """Give the node's running daemon its links again."""
        links = [(node, t) for t in self.ctx.plan.nodes[node].tunnels
                 if t.keying == self.name and self.ctx.active(t.peer)]
        credentials = self._credentials([node])
        self._load(node, [e for n, t in links for e in self.ends(n, t) if e.node == node], credentials)

    def wait_installed(self, node: str, tunnel: TunnelEnd, timeout: float = ESTABLISH_TIMEOUT) -> None:
        peer = tunnel.peer
        seen: list[str] = []

        def installed() -> bool:
            failure = self.failure(node) or self.failure(peer)
            if failure:
                raise TestbedError(f"virtual link {tunnel.label} ({node}-{peer}): IKE could not set up its SAs: "
                                   f"{failure}")
            states = [self.child_states(n, tunnel if n == node else self.ctx.plan.nodes[peer].tunnel_to(node))
                      for n in (node, peer)]
            seen[:] = [f"{n}: {s or 'no CHILD_SA'}" for n, s in zip((node, peer), states)]
            return all(INSTALLED in s for s in states)

        try:
            wait_for(installed, f"the CHILD_SA of virtual link {tunnel.label} ({node}-{peer}) to be installed on "
                     "both ends", timeout, interval=0.3, describe=lambda: "; ".join(seen))
        except WaitTimeout as exc:
            raise TestbedError(f"virtual link {tunnel.label} ({node}-{peer}): {exc}; {node}'s "
                               f"{self.daemon(node).name}: {self.daemon(node).log_tail(node)}") from None

    def failure(self, node: str) -> str:
        """The first line of the node's daemon log, since the current
        negotiation began, saying negotiation failed, if any."""
        daemon = self.daemon(node)
        for line in daemon.log_lines(node)[self.marks.get(node, 0):]:
            if daemon.FAILURE.search(line):
                return f"{node}'s {daemon.name}: {line.strip()}"
        return ""

    def keep_logs(self, folder) -> None:
        """Copy each daemon's log (no key material at the levels configured) into `folder`/ike."""
        folder = folder / "ike"
        folder.mkdir(parents=True, exist_ok=True)
        for node in self.daemon_nodes():
            daemon = self.daemon(node)
            (folder / daemon.log_name(node)).write_text("\n".join(daemon.log_lines(node)) + "\n")

    # -- what the daemons report ---------------------------------------------
    def negotiated(self, node: str, tunnel: TunnelEnd) -> list[IkeSaView]:
        """The node's IKE_SAs of one link, with their CHILD_SAs."""
        return self.daemon(node).sas(node).get(conn_name(tunnel), [])

    def snapshot(self, node: str) -> list[str]:
        """Every IKE_SA and CHILD_SA the node's daemon has, one line each
        (unique ids and SPIs): what a rekey or renegotiation would change."""
        lines = []
        for name, ikes in self.daemon(node).sas(node).items():
            for ike in ikes:
                lines.append(f"{name} {ike.describe()}")
                lines += [f"{name} {child.describe()}" for child in ike.children]
        return sorted(lines)

    def rekey(self, node: str, tunnel: TunnelEnd) -> None:
        """Ask the node's daemon to rekey the link's CHILD_SA now (RFC 7296 1.3.3)."""
        self.daemon(node).rekey_child(node, conn_name(tunnel), break_first=self.faults.rekey_restarts)

    def rekey_ike(self, node: str, tunnel: TunnelEnd) -> None:
        """Ask the node's daemon to rekey the link's IKE_SA now (RFC 7296
        2.8); its CHILD_SAs move to the new one as they are."""
        self.daemon(node).rekey_ike(node, conn_name(tunnel))

    def child_states(self, node: str, tunnel: TunnelEnd) -> list[str]:
        return [child.state for ike in self.negotiated(node, tunnel) for child in ike.children]


def _lab_ca(state) -> bytes:
    return (state / "ike" / "pki" / "lab-ca.crt").read_bytes()
