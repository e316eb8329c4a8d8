"""The `ip xfrm` lines each construction installs, and their removal."""
from __future__ import annotations

from testbed.datapath import ipsec
from testbed.datapath.modes import MODES
from testbed.topology.loader import load
from testbed.topology.plan import build_plan


def _link():
    plan = build_plan(load("fig6"))
    tunnel = plan.nodes["A"].tunnel_to("B")
    return tunnel, ipsec.link_sas(tunnel, 100)


def test_iiptran_selects_ipip_between_the_endpoints_in_transport_mode_with_anti_replay():
    tunnel, (out, back) = _link()
    lines = MODES["iiptran"].end_batch(tunnel, out, back)
    assert all("mode transport" in line for line in lines)
    assert f"sel src {out.src}/32 dst {out.dst}/32 proto 4" in lines[0]
    assert f"replay-window {ipsec.REPLAY_WINDOW}" in lines[0]
    want = f"xfrm policy add src {tunnel.local_base}/32 dst {tunnel.remote_base}/32 proto 4 dir out"
    assert lines[2].startswith(want)


def test_tunnel_interface_binds_states_and_policies_to_the_links_if_id():
    tunnel, (out, back) = _link()
    lines = MODES["tunnel-interface"].end_batch(tunnel, out, back)
    assert all(f"if_id {tunnel.link_index + 1}" in line for line in lines)
    assert all("mode tunnel" in line for line in lines)
    assert {line.split(" dir ")[1].split()[0] for line in lines[2:]} == {"out", "in", "fwd"}


def test_removal_deletes_exactly_what_was_added():
    tunnel, (out, back) = _link()
    lines = MODES["tunnel-interface"].end_batch(tunnel, out, back)
    undo = ipsec.removal(lines)
    assert undo[0] == f"xfrm state delete src {out.src} dst {out.dst} proto esp spi 0x{out.spi:08x}"
    assert undo[2] == f"xfrm policy delete src 0.0.0.0/0 dst 0.0.0.0/0 dir out if_id {tunnel.link_index + 1}"
    assert len(undo) == len(lines)


def test_fail_closed_shunts_block_ipip_alone_under_a_mark_of_their_own():
    from testbed.datapath.ipsec import SHUNT_MARK, block_shunts
    out, back = block_shunts("10.1.1.2", "10.1.2.2")
    assert out.startswith("xfrm policy update src 10.1.1.2/32 dst 10.1.2.2/32 proto 4 dir out action block")
    assert "src 10.1.2.2/32 dst 10.1.1.2/32 proto 4 dir in action block" in back
    assert SHUNT_MARK in out and SHUNT_MARK in back
    wide = block_shunts("10.1.1.2", "10.1.2.2", everything=True)
    assert all("proto" not in line and "mark" not in line for line in wide)
