"""The report folder: results.json, the self-contained HTML, the comparison."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.report.html import terminal_table, write_report
from testbed.report.results import compare

PROJECT = Path(__file__).resolve().parents[2]

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="3">
<testcase classname="conformance.test_encryption" name="test_every_packet_is_esp[xy]" time="1.5">
 <properties><property name="rfc" value="3884 3.1"/><property name="requirements" value="WIRE-ESP"/>
 <property name="evidence" value="evidence/test_every_packet_is_esp_xy_.json"/></properties>
 <failure message="AssertionError: 3 of 9 packets between endpoints are not ESP">Traceback ...</failure>
</testcase>
<testcase classname="conformance.test_forwarding" name="test_ospf_full" time="0.5">
 <properties><property name="rfc" value="3884 2.3"/><property name="requirements" value="FWD-OSPF"/>
 <property name="evidence" value="evidence/test_ospf_full.json"/>
 </properties></testcase>
<testcase classname="conformance.test_forwarding" name="test_cut_link[none]" time="0.0">
 <properties><property name="rfc" value="3884 2.3"/><property name="requirements" value="FWD-REROUTE"/>
 </properties>
 <skipped message="not applicable: no flow has an alternative path"/></testcase>
</testsuite></testsuites>
"""


def ladder_item(outer_ttl: int = 99) -> dict:
    """A ladder event as the WIRE-FORMAT check emits it: a packet scapy encrypts, and its decryption."""
    from scapy.layers.inet import ICMP, IP
    from scapy.packet import Raw

    from testbed.datapath.ipsec import new_sa
    from testbed.probe.esp import decrypt, scapy_sa
    sa = new_sa("10.1.1.2", "10.1.2.2", 100, "rfc4106-gcm-aes", "AB")
    inner = IP(src="192.168.1.1", dst="192.168.2.1", ttl=63, flags="DF") / ICMP(id=7, seq=3) / Raw(b"m" * 56)
    wire = IP(bytes(scapy_sa(sa).encrypt(IP(src=sa.src, dst=sa.dst, proto=4, ttl=outer_ttl) / inner)))
    body = {"wire": bytes(wire).hex(), "plain": bytes(decrypt(wire, [sa]).plain).hex()}
    return {"kind": "ladder", "title": "the flow's echo request on virtual link X->V", "node": "", "path": "",
            "body": json.dumps(body)}


def make_run(folder: Path, failing: bool = True, outer_ttl: int = 99) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    junit = JUNIT if failing else JUNIT.replace('<failure message="AssertionError: 3 of 9 packets between '
                                               'endpoints are not ESP">Traceback ...</failure>', "")
    (folder / "junit.xml").write_text(junit)
    (folder / "evidence").mkdir(exist_ok=True)
    (folder / "evidence" / "test_every_packet_is_esp_xy_.json").write_text(json.dumps([
        {"kind": "command", "title": "ip xfrm state  (exit 0)", "node": "A", "path": "",
         "body": "src 10.1.1.2 dst 10.1.2.2\n aead rfc4106(gcm(aes)) <key redacted> 128"},
        {"kind": "pcap", "title": "capture on R1:b-R2, 9 packets", "node": "R1", "body": "",
         "path": str(folder / "wire-xy-R1-b-R2.pcap")},
        ladder_item(outer_ttl)]))
    (folder / "evidence" / "test_ospf_full.json").write_text("[]")
    (folder / "lab.json").write_text(json.dumps({"lab": "fig3", "topology": "fig3",
                                                 "topology_file": str(PROJECT / "topologies" / "fig3.yaml")}))
    return folder


def test_results_json_maps_requirements_to_verdicts_and_evidence(tmp_path):
    run = make_run(tmp_path / "run")
    write_report(run)
    data = json.loads((run / "results.json").read_text())
    assert data["verdict"] == "fail"
    wire = data["requirements"]["WIRE-ESP"]
    assert (wire["verdict"], wire["tests"], wire["evidence"]) == (
        "failed", ["conformance.test_encryption::test_every_packet_is_esp[xy]"], ["wire-xy-R1-b-R2.pcap"])
    assert wire["rfc"] == ["3884 3.1"] and "ESP" in wire["statement"]
    assert data["requirements"]["FWD-OSPF"]["verdict"] == "passed"
    assert data["requirements"]["FWD-REROUTE"]["verdict"] == "not run"
    assert data["requirements"]["FWD-REROUTE"]["reason"] == "not applicable: no flow has an alternative path"
    assert data["requirements"]["JOIN-NOSA"] == {**data["requirements"]["JOIN-NOSA"], "verdict": "not run",
                                                 "tests": [], "reason": "no test of this run checks it"}
    assert "overall: FAIL" in terminal_table(run)


def test_html_is_self_contained_failures_first_and_keys_never_shown(tmp_path):
    run = make_run(tmp_path / "run")
    page = write_report(run).read_text()
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    namespaces = ("http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink")   # names, never fetched
    assert "http://" not in re.sub("|".join(map(re.escape, namespaces)), "", page)
    assert "https://" not in page
    assert page.index("test_every_packet_is_esp") < page.index("test_ospf_full")
    failed = page[page.index('<details id="t-conformance-test_encryption'):]
    assert failed.split(">", 1)[0].endswith("open"), "the failed test's evidence must be open"
    assert "&lt;key redacted&gt;" in failed and "wire-xy-R1-b-R2.pcap" in failed
    assert "<svg" in page and ">X</text>" in page   # the topology as drawn from fig3.yaml


def test_compare_reports_changed_verdicts(tmp_path):
    bad = make_run(tmp_path / "bad")
    good = make_run(tmp_path / "good", failing=False)
    write_report(bad)
    write_report(good)
    old, new = (json.loads((p / "results.json").read_text()) for p in (good, bad))
    assert compare(old, new) == [("WIRE-ESP", "passed", "failed")]
    html = tmp_path / "compare.html"
    done = subprocess.run([sys.executable, "-m", "testbed", "compare", str(good / "results.json"),
                           str(bad / "results.json"), "--html", str(html)], cwd=PROJECT, capture_output=True, text=True)
    assert done.returncode == 1 and "WIRE-ESP" in done.stdout
    page = html.read_text()
    assert re.search(r'<tr class="change"><td>WIRE-ESP<br>.*?</td>\s*<td class="passed">passed</td>'
                     r'<td class="failed">failed</td>', page, re.S)
    same = subprocess.run([sys.executable, "-m", "testbed", "compare", str(good / "results.json"),
                           str(good / "results.json"), "--html", str(html)], cwd=PROJECT, capture_output=True,
                          text=True)
    assert same.returncode == 0 and "no requirement changed" in same.stdout
    assert 'class="change"' not in html.read_text()


def test_compare_of_several_runs_shows_the_trend_and_each_step(tmp_path):
    runs = [make_run(tmp_path / name, failing=name == "2-bad") for name in ("1-good", "2-bad", "3-good")]
    for run in runs:
        write_report(run)
    html = tmp_path / "trend.html"
    done = subprocess.run([sys.executable, "-m", "testbed", "compare", *(str(r / "results.json") for r in runs),
                           "--html", str(html)], cwd=PROJECT, capture_output=True, text=True)
    assert done.returncode == 1, done.stdout + done.stderr     # run 2 regressed, even though run 3 recovered
    page = html.read_text()
    trend = page[page.index('id="trend"'):]
    assert re.search(r'<tr class="changed"><td>WIRE-ESP</td>\s*<td class="passed">passed</td>'
                     r'<td class="failed">failed</td><td class="passed">passed</td>', trend)
    assert '<tr><td>FWD-OSPF</td>' in trend                     # unchanged rows are not flagged
    assert page.count('class="change"') == 2                   # one change in each of the two steps
    strict = subprocess.run([sys.executable, "-m", "testbed", "compare", str(runs[0] / "results.json"),
                             str(runs[0] / "results.json"), "--strict", "--html", str(html)], cwd=PROJECT,
                            capture_output=True, text=True)
    assert strict.returncode == 0


@pytest.mark.parametrize("content", ["not json", "{}"])
def test_compare_rejects_bad_input_with_exit_2(tmp_path, content):
    bad = tmp_path / "results.json"
    bad.write_text(content)
    done = subprocess.run([sys.executable, "-m", "testbed", "compare", str(bad), str(bad), "--html",
                           str(tmp_path / "c.html")], cwd=PROJECT, capture_output=True, text=True)
    assert done.returncode == 2 and str(bad) in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "c.html").exists()


def test_compare_needs_two_runs(tmp_path):
    done = subprocess.run([sys.executable, "-m", "testbed", "compare", str(tmp_path / "results.json"), "--html",
                           str(tmp_path / "c.html")], cwd=PROJECT, capture_output=True, text=True)
    assert done.returncode == 2 and "at least two" in done.stderr and "Traceback" not in done.stderr


def test_report_draws_the_captured_packets_headers(tmp_path):
    page = write_report(make_run(tmp_path / "run")).read_text()
    section = page[page.index('id="encapsulation"'):page.index("Topology as built")]
    for header in ("outer IPv4 (base network)", "ESP", "inner IPv4 (VN, decrypted)", "payload: ICMP"):
        assert f'<div class="rung-name">{header}</div>' in section
    for field in ("<small>protocol</small><br><b>50 (ESP)</b>", "<small>TTL</small><br><b>99</b>",
                  "<small>next header</small><br><b>4 (IPIP), read after decryption</b>",
                  "<small>source</small><br><b>192.168.1.1</b>", "<small>DF</small><br><b>set</b>"):
        assert field in section, field
