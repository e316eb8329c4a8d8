"""Plain HTML summary of a run, from its junit.xml (the full report is separate)."""
from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET
from pathlib import Path


def results(junit: Path) -> list[dict]:
    rows = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome, detail = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "not run"}[tag]
                detail = (node.get("message") or "") + "\n" + (node.text or "")
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        rows.append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                     "rfc": props.get("rfc", ""), "detail": detail.strip(), "time": case.get("time")})
    return rows


def write_summary(report_dir: Path) -> Path:
    junit = report_dir / "junit.xml"
    rows = results(junit) if junit.exists() else []
    facts_file = report_dir / "lab.json"
    facts = json.loads(facts_file.read_text()) if facts_file.exists() else {}
    facts_html = "".join(f"<li>{html.escape(str(k))}: {html.escape(str(v))}</li>" for k, v in facts.items())
    counts = {k: sum(r["outcome"] == k for r in rows) for k in ("passed", "failed", "error", "not run")}
    body = "".join(
        f"<tr class='{r['outcome'].replace(' ', '-')}'><td>{html.escape(r['rfc'])}</td>"
        f"<td>{html.escape(r['test'])}</td><td>{r['outcome']}</td><td>{r['time']}</td>"
        f"<td><pre>{html.escape(r['detail'][:4000])}</pre></td></tr>"
        for r in sorted(rows, key=lambda r: r["outcome"] == "passed"))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>IIPtran conformance summary</title>
<style>body{{font-family:sans-serif}} td,th{{border:1px solid #ccc;padding:4px;vertical-align:top}}
table{{border-collapse:collapse}} .failed,.error{{background:#fdd}} .passed{{background:#dfd}}
.not-run{{background:#eee}} pre{{white-space:pre-wrap;margin:0;max-width:60em}}</style></head><body>
<h1>IIPtran conformance summary: {html.escape(report_dir.name)}</h1>
<p>{' · '.join(f'{v} {k}' for k, v in counts.items())}</p>
<ul>{facts_html}</ul>
<table><tr><th>RFC section</th><th>test</th><th>verdict</th><th>seconds</th><th>detail</th></tr>
{body}</table></body></html>"""
    out = report_dir / "index.html"
    out.write_text(page)
    return out
