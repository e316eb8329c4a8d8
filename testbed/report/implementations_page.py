"""The implementation matrix as a page: one column per implementation, each
cell linked to that run's report and judged against the reference."""
from __future__ import annotations

from pathlib import Path


def write_page(report_dir: Path, matrix: dict) -> Path:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from testbed.report.html import TEMPLATES, topology_drawing
    topology_file = next((c["lab"].get("topology_file") for c in matrix["implementations"].values()
                          if c["lab"].get("topology_file")), None)
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["j2", "html"]))
    page = env.get_template("implementations.html.j2").render(
        m=matrix, title=report_dir.name, drawing=topology_drawing(topology_file, []))
    out = report_dir / "index.html"
    out.write_text(page)
    return out
