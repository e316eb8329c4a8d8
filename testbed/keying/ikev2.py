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
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from testbed.datapath import ipsec
from testbed.errors import TestbedError, WaitTimeout
from testbed.keying import Keying, pki, strongswan
from testbed.keying.negotiated import ChildSaView, IkeSaView
from testbed.parallel import parallel
from testbed.topology.plan import TunnelEnd
from testbed.wait import wait_for

ESTABLISH_TIMEOUT = 45.0
CHILD = "ipip"
IKE_PROPOSAL = "aes128gcm16-prfsha256-ecp256"
ESP_PROPOSALS = {"rfc4106-gcm-aes": "aes128gcm16", "cbc-aes-hmac-sha256": "aes128-sha256"}
PFS_GROUP = "ecp256"         # RFC 8247 2.4: group 19, SHOULD (as the IKE_SA's)
DPD_DELAY_S = 2              # a peer silent this long is asked whether it is alive
# What charon logs when a peer cannot be authenticated or refuses the proposal.
FAILURE = re.compile(r"AUTHENTICATION_FAILED|authentication of .* failed|no trusted .* public key found|"
                     r"constraint check failed|NO_PROPOSAL_CHOSEN|TS_UNACCEPTABLE|no matching peer config|"
                     r"MAC mismatched|tried \d+ shared key|establishing CHILD_SA .* failed|key derivation failed")


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
    ike_proposal: str | None = None      # another IKE_SA proposal than the lab's
    no_pfs: bool = False                 # CHILD_SA rekeys without a Diffie-Hellman exchange
    child_life: tuple[int, int] | None = None   # the CHILD_SA's (rekey_time, life_time); rekey 0: never
    rekey_restarts: bool = False         # a rekey closes the CHILD_SA, then negotiates a new one (break before make)
    dpd_clear: bool = False              # a dead peer's SAs are cleared on both ends: nobody negotiates again


class Ikev2Keying(Keying):
    name = "ikev2"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.folder = ctx.state_dir
        self.marks: dict[str, int] = {}      # charon log lines seen before the current negotiation
        self.faults = IkeFaults()
        self.conventional: set[str] = set()  # links whose first end is configured conventionally

    @staticmethod
    def dead_peer_after() -> float:
        """Seconds of silence after which a daemon declares its peer dead:
        the DPD delay, then the retransmissions of the probe."""
        return DPD_DELAY_S + sum(strongswan.retransmit_schedule())

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

    def connection(self, end: LinkEnd, credentials: pki.Credentials | None) -> dict:
        tunnel = end.tunnel
        local, remote = tunnel.local_base, tunnel.remote_base
        protocol = "" if self.faults.wide_selectors else "[4]"
        ike = self.ctx.topology.defaults.ike
        pfs = f"-{PFS_GROUP}" if ike.pfs and not self.faults.no_pfs else ""
        child = {"mode": self.faults.child_mode,
                 "local_ts": [f"{local}/32{protocol}"], "remote_ts": [f"{remote}/32{protocol}"],
                 "esp_proposals": [ESP_PROPOSALS[tunnel.algorithm] + pfs],
                 "rekey_time": f"{ike.rekey_time}s",
                 "replay_window": "32", "start_action": "start" if end.initiator else "none",
                 "dpd_action": "restart" if end.initiator and not self.faults.dpd_clear else "clear"}
        if self.faults.child_life:
            # rand_time 0: with its default (life_time - rekey_time) charon
            # sets a soft limit of about nothing and rekeys without end.
            child.update(rekey_time=f"{self.faults.child_life[0]}s", life_time=f"{self.faults.child_life[1]}s",
                         rand_time="0s")
        if tunnel.label in self.conventional and end.initiator:
            # RFC 3884 4.2.4's conventional peer: tunnel mode with the VN prefixes as selectors.
            child.update(mode="tunnel", local_ts=[self.ctx.plan.nodes[end.node].lan_prefix],
                         remote_ts=[self.ctx.plan.nodes[tunnel.peer].lan_prefix])
        if self.auth == "psk":
            local_auth = remote_auth = {"auth": "psk"}
        else:
            local_auth = {"auth": "pubkey", "certs": [credentials.cert]}
            remote_auth = {"auth": "pubkey"}
        return {conn_name(tunnel): {
            "version": "2", "local_addrs": [local], "remote_addrs": [remote],
            "proposals": [self.faults.ike_proposal or IKE_PROPOSAL],
            "dpd_delay": f"{DPD_DELAY_S}s", "rekey_time": f"{ike.ike_rekey_time}s", "mobike": "no", "encap": "no",
            # A link is permanent: after a dead peer (a base-path outage) the
            # initiator tries again until the path is back, not once.
            "keyingtries": "0",
            "local": {**local_auth, "id": local}, "remote": {**remote_auth, "id": remote},
            "children": {CHILD: child}}}

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
        with strongswan.session(self.ctx.runtime, self.folder, node) as vici:
            if node in credentials:
                vici.load_cert({"type": "X509", "flag": "CA", "data": _lab_ca(self.folder)})
                vici.load_key({"type": "ecdsa", "data": credentials[node].key})
            for end in ends:
                if self.auth == "psk":
                    key = self.psk(end.tunnel)
                    if self.faults.wrong_psk == end.node:
                        key = "not-" + key
                    vici.load_shared({"type": "IKE", "data": key,
                                      "owners": [end.tunnel.local_base, end.tunnel.remote_base]})
                vici.load_conn(self.connection(end, credentials.get(node)))

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
        strongswan.stop_lab(runtime, state_dir)

    # -- lifecycle ------------------------------------------------------------
    def establish(self, links: list[tuple[str, TunnelEnd]]) -> None:
        """Start the daemons the links need, load the links, wait until each
        link's CHILD_SA is installed on both ends (or say why it is not)."""
        ends = [end for node, tunnel in links for end in self.ends(node, tunnel)]
        nodes = sorted({end.node for end in ends})
        parallel([lambda n=n: strongswan.start(self.ctx.runtime, self.folder, n) for n in nodes
                  if not strongswan.running(self.ctx.runtime, n)])
        self.marks = {n: len(strongswan.log_lines(self.ctx.runtime, self.folder, n)) for n in nodes}
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
        if self.link_sas(initiator.node, initiator.tunnel):   # the daemons may have cleared it already
            with strongswan.session(self.ctx.runtime, self.folder, initiator.node) as vici:
                for _ in vici.terminate({"ike": conn_name(tunnel), "timeout": "10000"}):
                    pass
        for end in ends:
            with strongswan.session(self.ctx.runtime, self.folder, end.node) as vici:
                vici.unload_conn({"name": conn_name(end.tunnel)})

    def restart(self, node: str, sig: int) -> None:
        """The node's daemon killed (with `sig`) and started again, its links loaded again."""
        strongswan.kill(self.ctx.runtime, node, sig)
        strongswan.start(self.ctx.runtime, self.folder, node)
        self.marks[node] = len(strongswan.log_lines(self.ctx.runtime, self.folder, node))
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
            return all("INSTALLED" in s for s in states)

        try:
            wait_for(installed, f"the CHILD_SA of virtual link {tunnel.label} ({node}-{peer}) to be installed on "
                     "both ends", timeout, interval=0.3, describe=lambda: "; ".join(seen))
        except WaitTimeout as exc:
            raise TestbedError(f"virtual link {tunnel.label} ({node}-{peer}): {exc}; {node}'s charon: "
                               f"{strongswan.log_tail(self.ctx.runtime, self.folder, node)}") from None

    def failure(self, node: str) -> str:
        """The first line of the node's charon log, since the current
        negotiation began, saying negotiation failed, if any."""
        for line in strongswan.log_lines(self.ctx.runtime, self.folder, node)[self.marks.get(node, 0):]:
            if FAILURE.search(line):
                return f"{node}'s charon: {line.strip()}"
        return ""

    def keep_logs(self, folder) -> None:
        """Copy each daemon's log (no key material at the levels configured) into `folder`/ike."""
        folder = folder / "ike"
        folder.mkdir(parents=True, exist_ok=True)
        for node in self.daemon_nodes():
            lines = strongswan.log_lines(self.ctx.runtime, self.folder, node)
            (folder / f"charon-{node}.log").write_text("\n".join(lines) + "\n")

    # -- what the daemons report ---------------------------------------------
    def list_sas(self, node: str) -> list[dict]:
        """The daemon's IKE_SAs with their CHILD_SAs (vici list-sas), decoded."""
        with strongswan.session(self.ctx.runtime, self.folder, node) as vici:
            return [_decode(entry) for entry in vici.list_sas()]

    def link_sas(self, node: str, tunnel: TunnelEnd) -> list[dict]:
        """The node's IKE_SAs of one link (each with its 'child-sas')."""
        return [entry[conn_name(tunnel)] for entry in self.list_sas(node) if conn_name(tunnel) in entry]

    def snapshot(self, node: str) -> list[str]:
        """Every IKE_SA and CHILD_SA the node's daemon has, one line each
        (unique ids and SPIs): what a rekey or renegotiation would change."""
        lines = []
        for entry in self.list_sas(node):
            for name, ike in entry.items():
                lines.append(f"{name} IKE #{ike.get('uniqueid')} {ike.get('state')} spi "
                             f"{ike.get('initiator-spi')}/{ike.get('responder-spi')}")
                for child in ike.get("child-sas", {}).values():
                    lines.append(f"{name} CHILD {child.get('name')} #{child.get('uniqueid')} {child.get('state')} "
                                 f"{child.get('mode')} spi in {child.get('spi-in')} out {child.get('spi-out')}")
        return sorted(lines)

    def rekey(self, node: str, tunnel: TunnelEnd) -> None:
        """Ask the node's daemon to rekey the link's CHILD_SA now (RFC 7296 1.3.3)."""
        with strongswan.session(self.ctx.runtime, self.folder, node) as vici:
            if self.faults.rekey_restarts:
                for _ in vici.terminate({"child": CHILD, "ike": conn_name(tunnel), "timeout": "10000"}):
                    pass
                for _ in vici.initiate({"child": CHILD, "ike": conn_name(tunnel), "timeout": "10000"}):
                    pass
                return
            answer = _decode(vici.rekey({"child": CHILD, "ike": conn_name(tunnel)}))
        if answer.get("success") != "yes" or answer.get("matches") in ("0", 0):
            raise TestbedError(f"{node}: rekeying link {tunnel.label} was refused: {answer}")

    def rekey_ike(self, node: str, tunnel: TunnelEnd) -> None:
        """Ask the node's daemon to rekey the link's IKE_SA now (RFC 7296
        2.8); its CHILD_SAs move to the new one as they are."""
        with strongswan.session(self.ctx.runtime, self.folder, node) as vici:
            answer = _decode(vici.rekey({"ike": conn_name(tunnel)}))
        if answer.get("success") != "yes" or answer.get("matches") in ("0", 0):
            raise TestbedError(f"{node}: rekeying link {tunnel.label}'s IKE_SA was refused: {answer}")

    def negotiated(self, node, tunnel):
        return [_ike_view(ike) for ike in self.link_sas(node, tunnel)]

    def child_states(self, node: str, tunnel: TunnelEnd) -> list[str]:
        return [child.get("state", "?") for ike in self.link_sas(node, tunnel)
                for child in ike.get("child-sas", {}).values()]


def _seconds(value) -> int | None:
    return int(value) if value not in (None, "") else None


def _ike_view(ike: dict) -> IkeSaView:
    """One IKE_SA of vici list-sas in IANA names."""
    children = tuple(ChildSaView(
        child.get("state", ""), child.get("mode", ""), strongswan.iana_encryption(child.get("encr-alg", "")),
        int(child.get("encr-keysize") or 0), strongswan.iana_integrity(child.get("integ-alg", "")),
        strongswan.ke_group(child.get("dh-group", "")), _seconds(child.get("rekey-time")),
        _seconds(child.get("life-time")), int(child.get("spi-in") or "0", 16), int(child.get("spi-out") or "0", 16))
        for child in ike.get("child-sas", {}).values())
    return IkeSaView(ike.get("state", ""), strongswan.iana_encryption(ike.get("encr-alg", "")),
                     int(ike.get("encr-keysize") or 0), strongswan.iana_integrity(ike.get("integ-alg", "")),
                     ike.get("prf-alg", ""), strongswan.ke_group(ike.get("dh-group", "")),
                     _seconds(ike.get("rekey-time")), _seconds(ike.get("reauth-time")), children)


def _lab_ca(state) -> bytes:
    return (state / "ike" / "pki" / "lab-ca.crt").read_bytes()


def _decode(value):
    """vici answers in bytes; the checks read text."""
    if isinstance(value, dict):
        return {(k.decode() if isinstance(k, bytes) else k): _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value
