"""RFC 3884 4.2.3.2 (Figure 6): a node joining the VN needs no change to the
SAs and policies of the existing virtual links."""
from __future__ import annotations

import pytest

from testbed import expect
from testbed.probe.traffic import ping



@pytest.mark.req("JOIN-NOSA")
def test_join_reaches_every_destination_and_leaves_existing_sas_alone(lab, join_record, joining_node):
    if joining_node not in join_record.joined:
        pytest.skip(f"not run: {joining_node} had already joined lab '{lab.name}' before this run, "
                    "so its join could not be observed")
    # Packets from the new node reach every flow destination through the VN.
    targets = sorted({spec.dst for spec in lab.topology.flows.values() if spec.src == joining_node})
    assert targets, f"the topology names no flow from {joining_node}"
    for dst in targets:
        result = ping(lab.runtime, joining_node, expect.lan_address(lab, dst), count=3)
        assert result.ok, f"{joining_node} -> {dst}: no reply after joining\n{result.output}"
    # The nodes that were members already keep their SAD/SPD for their
    # existing links; only entries for the new node's own link may appear.
    problems = []
    for node, before in join_record.before.items():
        after = join_record.after[node]
        new_peer_addresses = {lab.plan.nodes[n].base_address for n in join_record.joined}
        removed = [line for line in before if line not in after]
        added = [line for line in after if line not in before
                 and not any(addr in line for addr in new_peer_addresses)]
        if removed or added:
            problems.append(f"{node}: removed {removed}, added {added}")
    assert not problems, "SAs/policies of existing links changed on join:\n" + "\n".join(problems)
