"""The conformance suite's own test: on a deliberately broken datapath the
checks for the broken property fail (and a sound lab passes them, which
`make test-fig6` shows). Needs the real datapath: run via `make selftest`."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from testbed import faults
from testbed.lab import Lab
from testbed.report.results import read_junit

PROJECT = Path(__file__).resolve().parents[2]

# fault -> (checks to run, checks that must fail, checks that must still pass).
# Faults that break one virtual link or one source break the first flow of
# fig6 (nb: N-A-B); the other flow (nc: N-A-C) shows the checks are precise.
CASES = {
    "no-policies": ("test_encryption or test_policy", [
        "test_every_packet_between_tunnel_endpoints_is_esp", "test_no_plaintext_ipip_and_no_marker_in_clear",
        "test_decrypted_esp_is_ipip_carrying_the_flow", "test_outer_addresses_are_the_endpoints_own_base",
        "test_plaintext_ipip_from_a_spoofed_peer_is_not_delivered"], []),
    "no-in-policies": ("test_policy", ["test_plaintext_ipip_from_a_spoofed_peer_is_not_delivered"], []),
    "ospf-off": ("test_forwarding", [
        "test_ospf_full_on_every_virtual_link_and_nothing_else",
        "test_routes_to_all_vn_prefixes_go_via_tunnel_devices",
        "test_flow_follows_the_ospf_path_across_the_tunnels[nb]"],
        ["test_flow_follows_the_ospf_path_across_the_tunnels[nc]",
         "test_every_virtual_link_is_an_interface_with_a_vn_address"]),
    "no-vn-address": ("test_every_virtual_link_is_an_interface",
                      ["test_every_virtual_link_is_an_interface_with_a_vn_address"], []),
    "base-source": ("test_vn_host_sends_from_its_tunnel_address",
                    ["test_vn_host_sends_from_its_tunnel_address[nb]"],
                    ["test_vn_host_sends_from_its_tunnel_address[nc]"]),
    "tunnel-tos-fixed": ("test_rfc2003", ["test_outer_tos_is_copied_from_the_inner_header"],
                         ["test_outer_ttl_is_the_tunnels_fixed_value[nb]",
                          "test_outer_df_is_set_when_the_inner_df_is[nb]"]),
    "tunnel-ttl-changed": ("test_rfc2003", ["test_outer_ttl_is_the_tunnels_fixed_value"],
                           ["test_outer_tos_is_copied_from_the_inner_header[nb]",
                            "test_inner_ttl_untouched_at_encapsulation_and_decremented_per_vn_hop[nb]"]),
    "outer-df-cleared": ("test_rfc2003", ["test_outer_df_is_set_when_the_inner_df_is"],
                         ["test_outer_tos_is_copied_from_the_inner_header[nb]",
                          "test_outer_ttl_is_the_tunnels_fixed_value[nb]"]),
}


def _check(lab: str, report: Path, select: str) -> dict[str, str]:
    done = subprocess.run([sys.executable, "-m", "testbed", "check", "--name", lab, "--report", str(report),
                           "-k", select], cwd=PROJECT, capture_output=True, text=True, timeout=900)
    assert (report / "junit.xml").exists(), f"the check wrote no junit.xml:\n{done.stdout}\n{done.stderr}"
    outcomes = {row["id"].split("::")[-1]: row["outcome"] for row in read_junit(report / "junit.xml")}
    assert outcomes, f"no check ran:\n{done.stdout}"
    return outcomes


@pytest.mark.parametrize("fault", list(CASES))
def test_broken_datapath_makes_its_checks_fail(fault, tmp_path):
    select, must_fail, must_pass = CASES[fault]
    lab = Lab.up("fig6", f"st{fault.replace('-', '')}"[:12])
    try:
        for node in [n.name for n in lab.plan.vn_nodes if not lab.active(n.name)]:
            lab.join(node)
        faults.apply(lab, fault)
        outcomes = _check(lab.name, tmp_path / "report", select)
    finally:
        lab.down()
    for name in must_fail:
        matching = {test: outcome for test, outcome in outcomes.items() if test.startswith(name)}
        assert matching, f"{name} did not run under fault {fault}: {outcomes}"
        passed = [test for test, outcome in matching.items() if outcome != "failed"]
        assert not passed, f"with fault '{fault}' these checks did not fail: {passed}"
    for name in must_pass:
        assert outcomes.get(name) == "passed", \
            f"with fault '{fault}', {name} should be unaffected but is {outcomes.get(name, 'absent')}: {outcomes}"
