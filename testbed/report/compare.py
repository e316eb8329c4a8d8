"""`iiptran compare run1/results.json run2/results.json [...]`: verdict
changes per requirement between consecutive runs, printed and written as a
self-contained HTML page (a trend table when given more than two runs)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from tabulate import tabulate

from testbed.errors import UserError
from testbed.report.results import compare, is_regression

TEMPLATES = Path(__file__).with_name("templates")


@dataclass
class Run:
    path: Path
    data: dict

    @property
    def label(self) -> str:
        return str(self.path.parent) if self.path.name == "results.json" else str(self.path)

    def verdict_of(self, requirement: str) -> str:
        return self.data["requirements"].get(requirement, {}).get("verdict", "absent")


def _read(path: Path) -> Run:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, IsADirectoryError):
        raise UserError(f"{path}: no such results file (give a run's results.json)") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("requirements"), dict):
        raise UserError(f"{path}: not a results.json (no 'requirements' mapping)")
    return Run(path, data)


def _steps(runs: list[Run]) -> list[tuple[Run, Run, list[tuple[str, str, str]]]]:
    return [(old, new, compare(old.data, new.data)) for old, new in zip(runs, runs[1:])]


def write_html(runs: list[Run], out: Path) -> Path:
    steps = _steps(runs)
    changed = {req for _, _, changes in steps for req, _, _ in changes}
    requirements = sorted({req for run in runs for req in run.data["requirements"]})
    statements = {req: run.data["requirements"][req].get("statement", "")
                  for run in reversed(runs) for req in run.data["requirements"]}
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["j2", "html"]))
    page = env.get_template("compare.html.j2").render(
        runs=runs, steps=steps, changed=changed, statements=statements,
        rows=[(req, [run.verdict_of(req) for run in runs]) for req in requirements])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out


def compare_files(paths: list[Path], html: Path, strict: bool = False) -> int:
    """Print the changes between consecutive runs and write the HTML view;
    exit code 1 if a requirement now fails that did not, or passed and is
    now a known deviation (strict: if any requirement changed verdict,
    e.g. between two backends)."""
    if len(paths) < 2:
        raise UserError("compare needs at least two results.json files")
    runs = [_read(path) for path in paths]
    regressions = changed = 0
    for old, new, changes in _steps(runs):
        if not changes:
            print(f"no requirement changed verdict ({old.path} -> {new.path})")
            continue
        print(tabulate(changes, headers=["requirement", str(old.path), str(new.path)]))
        changed += len(changes)
        regressions += sum(is_regression(before, after) for _, before, after in changes)
    if regressions:
        print(f"{regressions} requirement(s) now fail, or are now a known deviation where they passed")
    print(f"iiptran: comparison written to {write_html(runs, html)}")
    return 1 if regressions or (strict and changed) else 0
