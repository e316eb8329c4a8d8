"""Faults in the manually keyed SAs and policies."""
from __future__ import annotations

from dataclasses import replace

from testbed.datapath import ipsec
from testbed.datapath.modes import MODES
from testbed.faults import Fault
from testbed.faults.common import last_link, manual_link_ends
from testbed.keying.manual import ManualKeying


def _reinstall(lab, node, tunnel, out, back, new_out, new_back, bound: bool = True) -> None:
    """Replace one end's SAs and policies (as the lab installed them) with others."""
    installed = MODES["iiptran"].end_batch(tunnel, out, back)
    fresh = ipsec.xfrm_batch(tunnel.local_base, tunnel.remote_base, new_out, new_back, bound=bound)
    ipsec.apply_batch(lab.runtime, node, ipsec.removal(installed) + fresh)


def rekey_link(lab, node: str, peer: str, algorithm: str | None = None, icv_bits: int = 0) -> str:
    """New SPIs and keys (and optionally another algorithm, or ICV length) on both ends of one link."""
    out, back = lab.link_sas(node, peer)
    tunnel = lab.plan.nodes[node].tunnel_to(peer)
    chosen = algorithm or out.algorithm
    new_out, new_back = ipsec.link_sas(replace(tunnel, algorithm=chosen), out.reqid, icv_bits=icv_bits)
    _reinstall(lab, node, tunnel, out, back, new_out, new_back)
    _reinstall(lab, peer, lab.plan.nodes[peer].tunnel_to(node), back, out, new_back, new_out)
    lab.keying.of(ManualKeying.name).replace((out, back), (new_out, new_back))
    return f"link {tunnel.label} ({node}-{peer}) re-keyed ({chosen})"


def no_policies(lab) -> str:
    for node in lab.active_vn_nodes():
        ipsec.flush_policies(lab.runtime, node)
    return "removed every xfrm policy on every VN node (SAs kept)"


def no_in_policies(lab) -> str:
    for node in lab.active_vn_nodes():
        ipsec.apply_batch(lab.runtime, node, ["xfrm policy deleteall dir in"])
    return "removed the inbound xfrm policies on every VN node"


def sa_tunnel_mode(lab) -> str:
    """The SAs and policy templates in tunnel mode, selectors unchanged: the
    IPIP packet is then wrapped once more instead of being protected as is."""
    for node, tunnel, out, back in manual_link_ends(lab):
        installed = MODES["iiptran"].end_batch(tunnel, out, back)
        tunnel_out, tunnel_back = (replace(sa, mode="tunnel") for sa in (out, back))
        ipsec.apply_batch(lab.runtime, node, ipsec.removal(installed) + [
            ipsec.state_line(tunnel_out), ipsec.state_line(tunnel_back),
            ipsec.policy_line(ipsec.ipip_selector(tunnel.local_base, tunnel.remote_base), "out", tunnel_out),
            ipsec.policy_line(ipsec.ipip_selector(tunnel.remote_base, tunnel.local_base), "in", tunnel_back)])
    return "every SA and policy template in tunnel mode where transport mode is expected"


def no_replay_window(lab) -> str:
    for node, tunnel, out, back in manual_link_ends(lab):
        installed = [line for line in MODES["iiptran"].end_batch(tunnel, out, back) if " state " in line]
        ipsec.apply_batch(lab.runtime, node, ipsec.removal(installed) + [
            line.replace(f"replay-window {ipsec.REPLAY_WINDOW}", "replay-window 0") for line in installed])
    return "every SA re-installed with replay window 0 (anti-replay off)"


def sa_no_auth(lab) -> str:
    """RFC 4303 3.2 allows confidentiality alone; IIPtran (RFC 3884 4.2.3)
    relies on authenticated IPIP. One link switched to AES-CBC without an
    integrity algorithm: a corrupted packet then fails only by chance."""
    node, peer = last_link(lab)
    return rekey_link(lab, node, peer, algorithm="cbc-aes") + ": AES-CBC without authentication"


def sa_3des_md5(lab) -> str:
    """One link re-keyed by hand with 3DES-CBC and HMAC-MD5-96 (RFC 8221:
    SHOULD NOT and MUST NOT): it works, and the wire looks as it should."""
    node, peer = last_link(lab)
    return rekey_link(lab, node, peer, algorithm="cbc-3des-hmac-md5") + ": 3DES-CBC with HMAC-MD5-96"


def sa_gcm_icv8(lab) -> str:
    """One link re-keyed by hand with AES-GCM and an 8-octet ICV (RFC 4106
    allows it; RFC 8221 asks for the 16-octet one)."""
    node, peer = last_link(lab)
    return rekey_link(lab, node, peer, algorithm="rfc4106-gcm-aes", icv_bits=64) + ": AES-GCM with a 64-bit ICV"


def sa_unbound(lab) -> str:
    """SAs without selectors and policy templates that accept any reqid: an
    SA is no longer bound to its link (RFC 3884 4.2.3). The SAs take reqid 0
    too: Linux looks an outbound SA up by the template's reqid."""
    for node, tunnel, out, back in manual_link_ends(lab):
        _reinstall(lab, node, tunnel, out, back, replace(out, reqid=0), replace(back, reqid=0), bound=False)
    return "every SA re-installed without a selector and with reqid 0, every policy template for any reqid"


FAULTS = [
    Fault("no-policies", no_policies),
    Fault("no-in-policies", no_in_policies),
    Fault("sa-tunnel-mode", sa_tunnel_mode),
    Fault("no-replay-window", no_replay_window),
    Fault("sa-no-auth", sa_no_auth),
    Fault("sa-3des-md5", sa_3des_md5),
    Fault("sa-gcm-icv8", sa_gcm_icv8),
    Fault("sa-unbound", sa_unbound),
]
