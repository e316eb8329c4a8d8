"""RFC 3884 2.3, 3.2: a virtual link whose base path dies is routed around
by the routing protocol alone. With BFD on the tunnels (a topology option),
the flow's traffic is back on the alternative path within a second, and no
SA or policy changes. The base path fails as real ones do: the endpoints'
packets stop, no interface goes down (testbed/routing/failover.py)."""
from __future__ import annotations

import pytest

from guards import needs_dynamic_routing
from testbed import events
from testbed.failover import fail_and_measure

WINDOW_LIMIT_S = 1.0


@pytest.mark.req("FAIL-BFD")
@pytest.mark.deadline
def test_dead_base_path_is_routed_around_within_a_second_with_bfd(lab, reroutable_flow, measurements):
    bfd = lab.topology.defaults.bfd
    if not bfd.enabled:
        pytest.skip(f"not applicable: {lab.topology.name} runs no BFD on its virtual links (defaults.bfd)")
    needs_dynamic_routing(lab)
    name, spec = reroutable_flow
    detection = bfd.interval_ms * bfd.multiplier / 1000
    record = fail_and_measure(lab, name, spec.src, spec.dst, detection)
    assert not record.problem, f"the failure of {'-'.join(record.cut)} could not be observed: {record.problem}"
    node, peer = record.cut
    sessions = lab.routing.bfd_sessions(lab, node)
    measurements("failover", {"flow": name, "link": f"{node}-{peer}", "window_s": record.window_s,
                              "lost": record.lost, "sent": record.sent, "bfd_ms": f"{bfd.interval_ms}x{bfd.multiplier}",
                              "rerouted_after_s": record.rerouted_after_s})
    events.note(node, f"base path under {node}-{peer} blackholed under {name}'s traffic", [
        f"loss window {record.window_s} s ({record.lost} of {record.sent} lost), {node} rerouted "
        f"{record.rerouted_after_s} s after the failure; BFD {bfd.interval_ms} ms x {bfd.multiplier}",
        f"{node}'s BFD sessions after restore: {sessions}", record.output.strip()[-1500:]])
    assert record.sent and record.received, f"the flow's stream carried nothing: {record.output[-300:]}"
    assert record.window_s < WINDOW_LIMIT_S, (
        f"with {node}-{peer}'s base path dead, {name} was silent for {record.window_s} s "
        f"({record.lost} of {record.sent} lost); with BFD at {bfd.interval_ms} ms x {bfd.multiplier} it must be "
        f"under {WINDOW_LIMIT_S} s")
    assert not record.sad_changed, f"SAD/SPD changed when {node}-{peer}'s base path died: {record.sad_changed}"
