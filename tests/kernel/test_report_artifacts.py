"""A real run's report folder: tshark, given the run's esp_sa table, decodes
a captured ESP packet to the inner packet of the flow."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from testbed.lab import Lab
from testbed.paths import SELFTEST_FIG6_REPORT
from testbed.report.wireshark import tshark_argv, tshark_env
from testbed.topology.loader import load
from testbed.topology.plan import build_plan

PROJECT = Path(__file__).resolve().parents[2]


# `iiptran gate` names the report of a fig6 run it has just made
# (SELFTEST_FIG6_REPORT): its artifacts are those of a real run, and a
# second bring-up and suite start (about a minute under emulation) would
# show nothing more.


def _run_fig6(report: Path) -> None:
    """A fig6 run's report of the wire check alone."""
    lab = Lab.up("fig6", "artifacts")
    try:
        done = subprocess.run([sys.executable, "-m", "testbed", "check", "--name", lab.name, "--report",
                               str(report), "-k", "test_every_packet_between_tunnel_endpoints_is_esp"],
                              cwd=PROJECT, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:]
    finally:
        lab.down()


def test_tshark_decrypts_a_capture_of_the_run(tmp_path):
    named = os.environ.get(SELFTEST_FIG6_REPORT)
    report = Path(named) if named else tmp_path / "report"
    if not named:
        _run_fig6(report)
    vn_addresses = {t.vn_address for n in build_plan(load("fig6")).vn_nodes for t in n.tunnels}
    assert (report / "wireshark" / "esp_sa").exists()
    results = json.loads((report / "results.json").read_text())
    pcaps = [p for r in results["requirements"].values() for p in r["evidence"] if p.startswith("wire-")]
    assert pcaps, f"no wire capture listed as evidence: {results['requirements']}"
    decoded = subprocess.run(tshark_argv(report / pcaps[0]) + ["-V"], env=tshark_env(report),
                             capture_output=True, text=True, timeout=120)
    assert decoded.returncode == 0, decoded.stderr
    inner = [line for line in decoded.stdout.splitlines() if "Src: 172.16." in line or "Src: 192.168." in line]
    assert inner, f"tshark did not decrypt the ESP of {pcaps[0]}:\n{decoded.stdout[-3000:]}"
    assert any(address in line for line in inner for address in vn_addresses)
    assert "Internet Control Message Protocol" in decoded.stdout
