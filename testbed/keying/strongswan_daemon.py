"""strongSwan as an IKE implementation: a link's LinkConfig becomes a vici
connection, the daemon's list-sas becomes negotiated views. The daemon's
process (one charon per node, its own /run) is strongswan.py."""
from __future__ import annotations

import re
import signal
from pathlib import Path

from testbed.errors import TestbedError
from testbed.keying import strongswan
from testbed.keying.ike_daemon import IkeDaemon, LinkConfig
from testbed.keying.negotiated import ChildSaView, IkeSaView, TrafficSelector
from testbed.keying.pki import Credentials
from testbed.protocols import protocol_number
from testbed.runtime.base import Runtime

CHILD = "ipip"
# strongSwan's proposal keywords.
ESP_PROPOSALS = {"rfc4106-gcm-aes": "aes128gcm16", "cbc-aes-hmac-sha256": "aes128-sha256"}
GROUPS = {2: "modp1024", 14: "modp2048", 19: "ecp256", 20: "ecp384", 31: "curve25519"}
IKE_PROPOSAL = "aes128gcm16-prfsha256-{group}"
REQUEST_TIMEOUT_MS = "10000"
# "10.0.0.1/32[ipencap]", "10.0.0.1/32[4/%any]", "10.0.0.0/24"
SELECTOR = re.compile(r"^(?P<prefix>[^\[]+)(?:\[(?P<protocol>[^\]/]*)(?:/[^\]]*)?\])?$")


class StrongswanDaemon(IkeDaemon):
    name = "strongswan"
    FAILURE = re.compile(r"AUTHENTICATION_FAILED|authentication of .* failed|no trusted .* public key found|"
                         r"constraint check failed|NO_PROPOSAL_CHOSEN|TS_UNACCEPTABLE|no matching peer config|"
                         r"MAC mismatched|tried \d+ shared key|establishing CHILD_SA .* failed|"
                         r"key derivation failed")

    # -- the daemon -------------------------------------------------------------
    def start(self, node: str) -> None:
        strongswan.start(self.runtime, self.state_dir, node)

    def running(self, node: str) -> bool:
        return strongswan.running(self.runtime, node)

    def kill(self, node: str, sig: int = signal.SIGTERM) -> None:
        strongswan.kill(self.runtime, node, sig)

    @staticmethod
    def stop_lab(runtime: Runtime, state_dir: Path) -> None:
        strongswan.stop_lab(runtime, state_dir)

    def log_lines(self, node: str) -> list[str]:
        return strongswan.log_lines(self.runtime, self.state_dir, node)

    def log_tail(self, node: str, lines: int = 6) -> str:
        return strongswan.log_tail(self.runtime, self.state_dir, node, lines)

    def log_name(self, node: str) -> str:
        return f"charon-{node}.log"

    def dead_peer_after(self, dpd_delay_s: int) -> float:
        return dpd_delay_s + sum(strongswan.retransmit_schedule())

    # -- links ------------------------------------------------------------------
    def load(self, node, links, credentials, trusted_ca):
        with strongswan.session(self.runtime, self.state_dir, node) as vici:
            if credentials is not None:
                vici.load_cert({"type": "X509", "flag": "CA", "data": trusted_ca})
                vici.load_key({"type": "ecdsa", "data": credentials.key})
            for link in links:
                if link.auth == "psk":
                    vici.load_shared({"type": "IKE", "data": link.psk, "owners": [link.local, link.remote]})
                vici.load_conn(connection(link, credentials))

    def unload(self, node, name):
        with strongswan.session(self.runtime, self.state_dir, node) as vici:
            vici.unload_conn({"name": name})

    def close(self, node, name):
        with strongswan.session(self.runtime, self.state_dir, node) as vici:
            for _ in vici.terminate({"ike": name, "timeout": REQUEST_TIMEOUT_MS}):
                pass

    def rekey_child(self, node, name, break_first=False):
        with strongswan.session(self.runtime, self.state_dir, node) as vici:
            if break_first:
                for _ in vici.terminate({"child": CHILD, "ike": name, "timeout": REQUEST_TIMEOUT_MS}):
                    pass
                for _ in vici.initiate({"child": CHILD, "ike": name, "timeout": REQUEST_TIMEOUT_MS}):
                    pass
                return
            answer = _decode(vici.rekey({"child": CHILD, "ike": name}))
        _accepted(node, answer, f"rekeying link {name}")

    def rekey_ike(self, node, name):
        with strongswan.session(self.runtime, self.state_dir, node) as vici:
            answer = _decode(vici.rekey({"ike": name}))
        _accepted(node, answer, f"rekeying link {name}'s IKE_SA")

    def sas(self, node):
        with strongswan.session(self.runtime, self.state_dir, node) as vici:
            listed = [_decode(entry) for entry in vici.list_sas()]
        found: dict[str, list[IkeSaView]] = {}
        for entry in listed:
            for name, ike in entry.items():
                found.setdefault(name, []).append(_ike_view(ike))
        return found


def connection(link: LinkConfig, credentials: Credentials | None) -> dict:
    """The vici connection of one end of a link."""
    protocol = f"[{link.protocol}]" if link.protocol else ""
    pfs = f"-{GROUPS[link.pfs_group]}" if link.pfs_group else ""
    child = {"mode": link.mode, "local_ts": [f"{p}{protocol}" for p in link.local_ts],
             "remote_ts": [f"{p}{protocol}" for p in link.remote_ts],
             "esp_proposals": [ESP_PROPOSALS[link.esp] + pfs], "rekey_time": f"{link.rekey_s}s",
             "replay_window": str(link.replay_window), "start_action": "start" if link.initiator else "none",
             "dpd_action": "restart" if link.initiator and not link.dpd_clear else "clear"}
    if link.life_s is not None:
        # rand_time 0: with its default (life_time - rekey_time) charon sets
        # a soft limit of about nothing and rekeys without end.
        child.update(life_time=f"{link.life_s}s", rand_time="0s")
    if link.auth == "psk":
        local_auth = remote_auth = {"auth": "psk"}
    else:
        local_auth, remote_auth = {"auth": "pubkey", "certs": [credentials.cert]}, {"auth": "pubkey"}
    return {link.name: {
        "version": "2", "local_addrs": [link.local], "remote_addrs": [link.remote],
        "proposals": [IKE_PROPOSAL.format(group=GROUPS[link.ike_group])],
        "dpd_delay": f"{link.dpd_delay_s}s", "rekey_time": f"{link.ike_rekey_s}s", "mobike": "no", "encap": "no",
        # A link is permanent: after a dead peer (a base-path outage) the
        # initiator tries again until the path is back, not once.
        "keyingtries": "0",
        # Always, not only when asked: libreswan asks for no certificate (no CERTREQ) yet needs the peer's.
        **({} if link.auth == "psk" else {"send_cert": "always"}),
        "local": {**local_auth, "id": link.local}, "remote": {**remote_auth, "id": link.remote},
        "children": {CHILD: child}}}


def _accepted(node: str, answer: dict, what: str) -> None:
    if answer.get("success") != "yes" or answer.get("matches") in ("0", 0):
        raise TestbedError(f"{node}: {what} was refused: {answer}")


def _seconds(value) -> int | None:
    return int(value) if value not in (None, "") else None


def _selectors(listed) -> tuple[TrafficSelector, ...]:
    found = []
    for text in listed or []:
        match = SELECTOR.match(text)
        if match:
            name = match.group("protocol") or ""
            found.append(TrafficSelector(match.group("prefix"), protocol_number(name) if name else 0))
    return tuple(found)


def _ike_view(ike: dict) -> IkeSaView:
    """One IKE_SA of vici list-sas in IANA names."""
    children = tuple(ChildSaView(
        child.get("state", ""), child.get("mode", ""), strongswan.iana_encryption(child.get("encr-alg", "")),
        int(child.get("encr-keysize") or 0), strongswan.iana_integrity(child.get("integ-alg", "")),
        strongswan.ke_group(child.get("dh-group", "")), _seconds(child.get("rekey-time")),
        _seconds(child.get("life-time")), int(child.get("spi-in") or "0", 16), int(child.get("spi-out") or "0", 16),
        _selectors(child.get("local-ts")), _selectors(child.get("remote-ts")), str(child.get("uniqueid", "")))
        for child in ike.get("child-sas", {}).values())
    return IkeSaView(ike.get("state", ""), strongswan.iana_encryption(ike.get("encr-alg", "")),
                     int(ike.get("encr-keysize") or 0), strongswan.iana_integrity(ike.get("integ-alg", "")),
                     ike.get("prf-alg", ""), strongswan.ke_group(ike.get("dh-group", "")),
                     _seconds(ike.get("rekey-time")), _seconds(ike.get("reauth-time")), children,
                     ike.get("local-host", ""), ike.get("remote-host", ""),
                     f"{ike.get('initiator-spi')}/{ike.get('responder-spi')}", str(ike.get("uniqueid", "")))


def _decode(value):
    """vici answers in bytes; the checks read text."""
    if isinstance(value, dict):
        return {(k.decode() if isinstance(k, bytes) else k): _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value
