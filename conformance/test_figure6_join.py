"""RFC 3884 4.2.3.2 (Figure 6): a node joining the VN needs no change to the
SAs and policies of the existing virtual links."""
from __future__ import annotations

import re

import pytest

from guards import guard
from testbed import events, expect
from testbed.probe.traffic import ping

ADDRESS = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?:/\d+)?(?![\d.])")


def _addresses_in(line: str) -> set[str]:
    """The IPv4 addresses an SA or policy line names, as addresses: a
    prefix of another (10.1.4.2 in 10.1.4.21) is not a match."""
    return {m.split("/")[0] for m in ADDRESS.findall(line)}


@pytest.mark.req("JOIN-NOSA")
def test_join_reaches_every_destination_and_leaves_existing_sas_alone(lab, join_record, joining_node):
    guard(not join_record.problem, f"the join could not be completed: {join_record.problem}")
    if joining_node not in join_record.joined:
        pytest.skip(f"not run: {joining_node} had already joined lab '{lab.name}' before this run, "
                    "so its join could not be observed")
    first = join_record.first_reach[joining_node]
    assert first, f"the topology names no flow from {joining_node}"
    events.note(joining_node, "pings from the new node's VN-local address, existing members untouched",
                  [f"-> {dst}: {result.received}/{result.sent} replies" for dst, result in first.items()])
    # Reached with only its own link configured: nothing on A, B, C changed yet.
    dropped = {dst: result for dst, result in first.items() if not result.ok}
    if dropped:
        now = {dst: ping(lab.runtime, joining_node, expect.lan_address(lab, dst), count=3,
                         source=expect.lan_address(lab, joining_node)).ok for dst in dropped}
        pytest.fail(f"{joining_node}'s packets to {sorted(dropped)} were dropped until the existing members "
                    f"were reconfigured (reached after the change: {now})\n"
                    + "\n".join(r.output for r in dropped.values()))
    # The nodes that were members already keep their SAD/SPD for their
    # existing links; only entries for the new node's own link may appear.
    problems = []
    new_peer_addresses = {lab.plan.nodes[n].base_address for n in join_record.joined}
    for node, before in join_record.before.items():
        after = join_record.after[node]
        removed = [line for line in before if line not in after]
        added = [line for line in after if line not in before
                 and not new_peer_addresses & _addresses_in(line)]
        if removed or added:
            problems.append(f"{node}: removed {removed}, added {added}")
    assert not problems, "SAs/policies of existing links changed on join:\n" + "\n".join(problems)
