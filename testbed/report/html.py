"""Write a run's report folder: results.json, index.html (self-contained), and
the terminal summary table."""
from __future__ import annotations

import json
import re
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from tabulate import tabulate

from testbed.errors import TestbedError
from testbed.report import ladder, summary
from testbed.report.results import SEVERITY, build_results, machine_readable
from testbed.verdicts import FAILING

TEMPLATES = Path(__file__).with_name("templates")


def _anchor(test_id: str) -> str:
    return "t-" + re.sub(r"[^A-Za-z0-9_-]+", "-", test_id)


def topology_drawing(topology_file: str | None, tests: list[dict]) -> dict:
    """The drawing (inline SVG) and its legend: flows with their colours."""
    if not topology_file:
        return {"svg": "<p>(no lab was built in this run)</p>", "flows": []}
    from testbed.report.diagram import render_svg
    from testbed.report.marks import build_marks
    from testbed.topology.loader import load
    from testbed.topology.plan import build_plan
    try:
        plan = build_plan(load(topology_file))
    except TestbedError as exc:
        return {"svg": f"<p>(topology file no longer readable: {exc})</p>", "flows": []}
    marks, observed = build_marks(plan, tests)
    flows = [{"name": name, "path": path, "colour": marks.flow_colour(name), "observed": name in observed}
             for name, path in sorted(marks.flows.items())]
    return {"svg": render_svg(plan, marks), "flows": flows,
            "failed": sorted(marks.failed_nodes) + [f"link {label}" for label in sorted(marks.failed_links)]}


def write_report(report_dir: Path, page: bool = True) -> Path:
    """results.json, and (with `page`) index.html. A pool in the guest leaves
    the page to whoever judges the runs natively (about 6 s of emulated CPU
    a run: the drawing, the template, paths over 9p)."""
    results = build_results(report_dir)
    (report_dir / "results.json").write_text(json.dumps(machine_readable(results, report_dir), indent=1) + "\n")
    if not page:
        return report_dir / "results.json"
    return _write_page(report_dir, results)


def _write_page(report_dir: Path, results: dict) -> Path:
    tests = sorted(results["tests"], key=lambda t: SEVERITY.index(t["outcome"]))
    for test in tests:
        test["anchor"] = _anchor(test["id"])
        for item in test["evidence"]:
            if item.get("path"):
                item["rel"] = _relative(item["path"], report_dir)
            if item.get("kind") == "ladder":
                item["headers"] = ladder.from_item(item)
    requirements = sorted(results["requirements"], key=lambda r: SEVERITY.index(r["verdict"]))
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["j2", "html"]))
    page = env.get_template("report.html.j2").render(
        r=results, tests=tests, requirements=requirements,
        drawing=topology_drawing(results["lab"].get("topology_file"), results["tests"]),
        facts=summary.facts(results["lab"]), timings=summary.timings(results["lab"]),
        measured=summary.measurements(results["measurements"]),
        files=[name for name in ("run.log", "junit.xml", "results.json") if (report_dir / name).exists()],
        failures=[t for t in tests if t["outcome"] in FAILING],
        encapsulation=ladder.first_ladder(results["tests"]),
        anchors={t["id"]: t["anchor"] for t in tests}, outcomes={t["id"]: t["outcome"] for t in tests},
        tshark="tshark -o esp.enable_encryption_decode:TRUE -r <capture>.pcap")
    out = report_dir / "index.html"
    out.write_text(page)
    return out


def _relative(path: str, report_dir: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(report_dir.resolve()))
    except ValueError:
        return path


def terminal_table(report_dir: Path) -> str:
    data = json.loads((report_dir / "results.json").read_text())
    rows = [[rid, ", ".join(req["rfc"]), req["verdict"], len(req["tests"])]
            for rid, req in data["requirements"].items()]
    counts = ", ".join(f"{v} {k}" for k, v in data["counts"].items())
    return (tabulate(rows, headers=["requirement", "RFC", "verdict", "tests"]) +
            f"\noverall: {data['verdict'].upper()} ({counts})")
