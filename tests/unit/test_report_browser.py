"""The HTML report in headless Chromium: renders from a file, no console
errors, nothing fetched (its CSP forbids it, and a violation is a console
error), matrix rows present, the failed test's evidence open, and what the failure
concerns marked in the topology drawing."""
from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from testbed.report.diagram import FAILED
from testbed.report.html import write_report
from testbed.requirements import catalogue

from test_report import make_run

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0", "--dump-dom"]


def render(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The DOM after load, and the page's console messages."""
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if chromium is None:
        pytest.fail("no Chromium: Debian's package chromium (`make system-deps` installs it), or on Ubuntu the "
                    "chromium snap or google-chrome")
    done = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    return done.stdout, console


class Rows(HTMLParser):
    def __init__(self):
        super().__init__()
        self.requirement_rows = 0
        self.ladders = 0
        self.open_failed = []
        self._in_failed = False
        self.failed_text = ""
        self.drawn: dict[str, bool] = {}     # drawing's node/link group -> drawn in the failure colour
        self._group = None

    def handle_endtag(self, tag):
        if tag == "svg":
            self._group = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "g" and classes and classes[0] in ("node", "edge"):
            self._group = attrs["id"]
            self.drawn[self._group] = False
        if self._group and attrs.get("stroke", "").lower() == FAILED:
            self.drawn[self._group] = True
        if tag == "tr" and "requirement" in classes:
            self.requirement_rows += 1
        if tag == "div" and "ladder" in classes:
            self.ladders += 1
        if tag == "details" and "test" in classes and "failed" in classes:
            self.open_failed.append("open" in attrs)
            self._in_failed = True

    def handle_data(self, data):
        if self._in_failed:
            self.failed_text += data


def test_report_renders_without_console_errors_or_fetches(tmp_path):
    run = make_run(tmp_path / "run")
    dom, console = render(write_report(run), tmp_path / "profile")
    assert console == [], f"console messages: {console}"
    rows = Rows()
    rows.feed(dom)
    assert rows.requirement_rows == len(catalogue())
    assert rows.open_failed == [True], "the failed test's evidence is not open"
    assert "3 of 9 packets between endpoints are not ESP" in rows.failed_text
    assert "ip xfrm state" in rows.failed_text and "wire-xy-R1-b-R2.pcap" in rows.failed_text
    assert rows.ladders == 2, "the header ladder is drawn at the top and in the failed test's evidence"
    assert "4 (IPIP), read after decryption" in rows.failed_text
    # The forced failure (flow xy's packets in clear) marks the flow's ends and links in red, and only those.
    assert {g for g, red in rows.drawn.items() if red} == {"node_X", "node_Y", *(f"link_{n}" for n in "12357")}
    assert {"node_A", "node_R1", "link_4"} <= set(rows.drawn), "the rest of the lab is drawn, unmarked"
    assert "concerned by failed checks: X, Y, link 1, link 2, link 3, link 5, link 7" in " ".join(dom.split())


def test_a_fetch_would_be_caught(tmp_path):
    """Control: the same check notices a page that tries to load something."""
    run = make_run(tmp_path / "run")
    page = write_report(run)
    page.write_text(page.read_text().replace("</body>", '<img src="http://127.0.0.1:9/x.png"></body>'))
    _, console = render(page, tmp_path / "profile")
    assert any("Content Security Policy" in line or "Refused" in line for line in console), console


def test_matrix_page_renders_one_column_per_mode_and_marks_unpredicted_verdicts(tmp_path):
    from testbed.matrix import build_matrix, write_matrix_page
    from testbed.requirements import mode_predictions
    for mode, failed in (("iiptran", {"SRC-HOST"}),
                         ("tunnel-policy", set(mode_predictions()["tunnel-policy"].predicted_failures))):
        folder = tmp_path / "m" / mode
        folder.mkdir(parents=True)
        requirements = {rid: {"verdict": "failed" if rid in failed else "passed", "tests": ["t"]}
                        for rid in catalogue()}
        (folder / "results.json").write_text(json.dumps({"requirements": requirements, "lab": {}}))
    page = write_matrix_page(tmp_path / "m", build_matrix(tmp_path / "m", ["iiptran", "tunnel-policy"]))
    dom, console = render(page, tmp_path / "profile")
    assert console == [], f"console messages: {console}"
    rows = Rows()
    rows.feed(dom)
    assert rows.requirement_rows == len(catalogue())
    assert dom.count('class="failed differs"') == 1, "the one unpredicted verdict (iiptran SRC-HOST) is not marked"
    assert "iiptran: SRC-HOST failed, RFC 3884 predicts a pass" in dom


def test_matrix_page_shows_the_flows_packet_under_each_mode_and_marks_differing_fields(tmp_path):
    """RFC 3884 A.2 side by side: only the field that really differs (here the outer TTL) is marked."""
    from testbed.matrix import build_matrix, write_matrix_page
    from test_report import make_run as run_with_ladder
    for mode, ttl in (("iiptran", 99), ("tunnel-policy", 64)):
        write_report(run_with_ladder(tmp_path / "m" / mode, failing=False, outer_ttl=ttl))
    page = write_matrix_page(tmp_path / "m", build_matrix(tmp_path / "m", ["iiptran", "tunnel-policy"]))
    dom, console = render(page, tmp_path / "profile")
    assert console == [], f"console messages: {console}"
    table = dom[dom.index('id="packets"'):]
    table = table[:table.index("</table>")]
    marked = [row for row in table.split("<tr")[1:] if "differs-row" in row]
    assert len(marked) == 1 and "<td>TTL</td>" in marked[0] and ">99<" in marked[0] and ">64<" in marked[0], marked
    assert "<td>SPI</td>" in table and "50 (ESP)" in table
