"""RFC 3884 3: IIPtran "does not compromise the end-to-end use of IPsec,
either inside a VPN or in the base network". Two hosts of the VN (the
VN-local addresses of a flow's ends) protect their own traffic with
transport-mode ESP; the wire then shows the link's ESP, IPIP, and the
hosts' ESP inside, each decrypting with its own keys from the kernels."""
from __future__ import annotations

import secrets

import pytest
from scapy.layers.inet import IP

from guards import guard
from testbed import events, expect
from testbed.datapath import ipsec
from testbed.probe.esp import IPPROTO_ESP, decrypt
from testbed.probe.flows import access_capture
from testbed.probe.traffic import ping

E2E_REQID = 9000


@pytest.mark.req("VN-E2E-IPSEC")
def test_end_to_end_transport_esp_inside_the_vn(lab, report_dir):
    name, spec = next(iter(lab.topology.flows.items()))
    here, there = expect.lan_address(lab, spec.src), expect.lan_address(lab, spec.dst)
    out = ipsec.new_sa(here, there, E2E_REQID, "rfc4106-gcm-aes", "end-to-end")
    back = ipsec.new_sa(there, here, E2E_REQID + 1, "rfc4106-gcm-aes", "end-to-end")
    batches = {spec.src: ipsec.host_to_host_batch(here, there, out, back),
               spec.dst: ipsec.host_to_host_batch(there, here, back, out)}
    marker = secrets.token_bytes(8)
    try:
        for node, lines in batches.items():
            ipsec.apply_batch(lab.runtime, node, lines)
        with access_capture(lab, report_dir, spec.src, f"end-to-end-{name}") as cap:
            result = ping(lab.runtime, spec.src, there, count=3, source=here, pattern_hex=marker.hex())
        hosts_sas = [sa.as_sa() for sa in lab.kernel_sad(spec.src).between(here, there)]
    finally:
        for node, lines in batches.items():
            ipsec.apply_batch(lab.runtime, node, ipsec.removal(lines), missing_ok=True)
    layers = []
    for packet in cap.packets:
        link = lab.decrypt(packet)
        inner = link.inner if link else None
        if inner is None or (inner.src, inner.dst, inner.proto) != (here, there, IPPROTO_ESP):
            continue
        host = decrypt(IP(bytes(inner)), hosts_sas)
        layers.append((packet, link, inner, host))
    events.packets("outer ESP (link) / IPIP / inner ESP (hosts) / payload", [
        f"{p[IP].src}>{p[IP].dst} spi 0x{link.spi:08x} / {inner.src}>{inner.dst} ESP spi 0x{host.spi:08x} / "
        f"{host.plain.payload.summary() if host and host.plain else '?'}" for p, link, inner, host in layers])
    if not result.ok:
        # Without end-to-end ESP, does the flow get through at all? If not,
        # the check says nothing about end-to-end IPsec.
        plain = ping(lab.runtime, spec.src, there, count=2, timeout=1, source=here)
        guard(plain.ok, f"the flow {spec.src} -> {spec.dst} gets no reply even without end-to-end ESP\n{plain.output}")
    assert result.ok, f"{spec.src} -> {spec.dst} with end-to-end ESP between {here} and {there}: no reply\n" \
                      f"{result.output}"
    assert hosts_sas, f"{spec.src}'s kernel holds no end-to-end SA {here}->{there}"
    assert layers, (f"no packet on {spec.src}'s access link was link ESP carrying IPIP carrying the hosts' ESP "
                    f"{here}->{there}")
    carrying = [host for *_, host in layers if host and host.plain is not None and marker in bytes(host.plain)]
    assert carrying, "the hosts' ESP, decrypted with their own keys, does not carry the echo request's payload"
