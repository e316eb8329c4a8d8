"""RFC 3884 4.2.3: a VN packet is accepted only if it arrived over "a
specific IPIP tunnel that was secured with IPsec transport mode". An SA is
bound to its link: ESP that decrypts with the SA of the hub's link to P but
carries Q's base address as outer source (Q being another peer of the hub)
must not be decapsulated as if it came over the link to Q. On Linux the
binding is the SA's selector and the policy template's reqid."""
from __future__ import annotations

import secrets

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.packet import Raw

from testbed import events, expect
from testbed.probe import inspect
from testbed.probe.forge import resync, send_forged

SENT = 2
BINDING_DROPS = ("XfrmInStateMismatch", "XfrmInTmplMismatch", "XfrmInNoPols", "XfrmInPolBlock")


@pytest.mark.req("SA-BINDING")
def test_esp_of_one_link_with_another_endpoints_source_is_dropped(lab):
    hub = next((n for n in lab.plan.vn_nodes if lab.active(n.name)
                and sum(lab.active(t.peer) for t in n.tunnels) >= 2), None)
    if hub is None:
        pytest.skip(f"not applicable: no VN node of {lab.topology.name} has two virtual links")
    p, q = [t.peer for t in hub.tunnels if lab.active(t.peer)][:2]
    q_base = lab.plan.nodes[q].base_address
    marker = secrets.token_bytes(8)
    # What Q's link would carry: an echo request from Q's VN-local network.
    inner = IP(src=expect.lan_address(lab, q), dst=expect.lan_address(lab, hub.name), ttl=64) / \
        ICMP(type=8, id=0x5a5a) / Raw(marker)
    echoes = inspect.snmp_counters(lab.runtime, hub.name)["Icmp.InEchos"]
    xfrm_before = inspect.xfrm_stats(lab.runtime, hub.name)
    forged = send_forged(lab, p, hub.name, inner, outer_src=q_base, count=SENT)
    sa, router = forged.sa, forged.router
    after = inspect.xfrm_stats(lab.runtime, hub.name)
    delivered = inspect.snmp_counters(lab.runtime, hub.name)["Icmp.InEchos"] - echoes
    resync(lab, p, hub.name)
    moved = {k: after[k] - xfrm_before.get(k, 0) for k in after if after[k] != xfrm_before.get(k, 0)}
    events.note(hub.name, f"ESP under {p}'s SA 0x{sa.spi:08x} with {q}'s outer source {q_base}, sent from {router}",
                [f"{forged.sent} sent; echo requests delivered {delivered}", f"xfrm counters that moved: {moved}"])
    assert delivered == 0, (f"{hub.name} decapsulated and delivered {delivered} packet(s) protected by the SA of its "
                            f"link to {p} but sent as if by {q}: the SA is not bound to its link")
    dropped = sum(moved.get(k, 0) for k in BINDING_DROPS)
    assert dropped >= SENT, (f"{hub.name} did not count the {SENT} mismatched packets (of {forged.sent} sent) as an SA "
                             f"or policy mismatch; "
                             f"counters that moved: {moved}")
