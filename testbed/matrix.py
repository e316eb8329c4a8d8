"""The side-by-side run: the same suite against every datapath mode on a
topology (or several, in one batch), one verdict column per mode, each cell
compared with what RFC 3884 predicts for that mode (conformance/modes.yaml)."""
from __future__ import annotations

import json
from pathlib import Path

from tabulate import tabulate

from testbed.verdicts import DEVIATION, FAILING, NOT_RUN
from testbed.requirements import catalogue, mode_predictions

AGREES, DOCUMENTED, DIFFERS = "as predicted", "Linux differs (documented)", "differs"
NOT_APPLICABLE, NOT_CHECKED = "n/a", "not checked"
RECORDED = "known deviation (recorded)"


def matrix_runs(report_dirs: dict[str, Path], modes: list[str]) -> list:
    """One run per (topology, mode), placed longest first."""
    from testbed.batch import Run
    from testbed.topology.overrides import with_overrides
    from testbed.run_order import longest_first, placed
    from testbed.topology.loader import load
    return longest_first([placed(Run(f"{topology} with datapath {mode}", topology, f"mx{t}{i}",
                                     report_dirs[topology] / mode, {"datapath": mode}),
                                 with_overrides(load(topology), {"datapath": mode}))
                          for t, topology in enumerate(report_dirs) for i, mode in enumerate(modes)])


def judge_matrices(report_dirs: dict[str, Path], modes: list[str], runs: list) -> bool:
    """One matrix per topology: the table, matrix.json and its page."""
    from testbed.batch import print_failures
    ok = True
    for report_dir in report_dirs.values():
        matrix = build_matrix(report_dir, modes)
        (report_dir / "matrix.json").write_text(json.dumps(matrix, indent=1) + "\n")
        page = write_matrix_page(report_dir, matrix)
        print(matrix_table(matrix))
        print(f"iiptran: matrix written to {page} (one report per mode beside it)")
        ok = ok and matrix["ok"]
    if not ok:
        # The modes RFC 3884 predicts to fail fail by design; the IIPtran
        # runs' own failures are what a CI log must explain.
        print_failures([run for run in runs if run.overrides["datapath"] == "iiptran"])
    return ok


def run_matrix(report_dirs: dict[str, Path], modes: list[str]) -> int:
    """Every (topology, mode) run in one batch, then one matrix per topology."""
    from testbed.batch import run_all
    runs = run_all(matrix_runs(report_dirs, modes), title="matrix")
    return 0 if judge_matrices(report_dirs, modes, runs) else 1


def judge(verdict: str, predicted_failure: bool, documented: bool, tests: int = 1) -> str:
    if verdict == NOT_RUN:
        # A skip that says why is "not applicable"; no test at all (a run that
        # broke before collecting) is a gap, never a pass.
        return NOT_APPLICABLE if tests else NOT_CHECKED
    if verdict == DEVIATION:
        # conformance/deviations.yaml recorded it for this datapath and
        # kernel, and the evidence matched its signature.
        return RECORDED
    if (verdict in FAILING) == predicted_failure:
        return AGREES
    return DOCUMENTED if documented else DIFFERS


def build_matrix(report_dir: Path, modes: list[str]) -> dict:
    predictions = mode_predictions()
    columns, problems = {}, []
    for mode in modes:
        results_file = report_dir / mode / "results.json"
        if not results_file.exists():
            problems.append(f"{mode}: the run wrote no results.json")
            continue
        results = json.loads(results_file.read_text())
        prediction = predictions[mode]
        cells = {}
        for req, entry in results["requirements"].items():
            predicted = req in prediction.predicted_failures
            judgement = judge(entry["verdict"], predicted, req in prediction.linux_differs, len(entry["tests"]))
            cells[req] = {"verdict": entry["verdict"], "predicted": "fail" if predicted else "pass",
                          "judgement": judgement,
                          "why": prediction.linux_differs.get(req) or prediction.predicted_failures.get(req, "")}
            if judgement == DIFFERS:
                problems.append(f"{mode}: {req} {entry['verdict']}, RFC 3884 predicts "
                                f"{'failure' if predicted else 'a pass'}")
            elif judgement == NOT_CHECKED:
                problems.append(f"{mode}: {req} was not checked (no test of the run covers it)")
        columns[mode] = {"summary": prediction.summary, "report": f"{mode}/index.html", "cells": cells,
                         "lab": results.get("lab", {})}
    return {"modes": columns, "requirements": {r.id: {"rfc": r.rfc, "statement": r.statement}
                                               for r in catalogue().values()},
            "problems": problems, "ok": not problems and len(columns) == len(modes)}


def _cell_text(cell: dict) -> str:
    mark = {AGREES: "", NOT_APPLICABLE: "", DOCUMENTED: " (Linux)", DIFFERS: " (!= RFC)",
            NOT_CHECKED: " (not checked)", RECORDED: ""}[cell["judgement"]]
    return f"{cell['verdict']}{mark}"


def matrix_table(matrix: dict) -> str:
    modes = list(matrix["modes"])
    rows = [[req, *(_cell_text(matrix["modes"][m]["cells"][req]) if req in matrix["modes"][m]["cells"] else "-"
                    for m in modes)] for req in matrix["requirements"]]
    verdict = "every verdict as RFC 3884 predicts" if matrix["ok"] else "; ".join(matrix["problems"])
    return tabulate(rows, headers=["requirement", *modes]) + f"\nmatrix: {verdict}"


def write_matrix_page(report_dir: Path, matrix: dict) -> Path:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from testbed.report.html import TEMPLATES, topology_drawing
    from testbed.report.ladder import first_ladder, side_by_side
    from testbed.report.results import build_results
    topology_file = next((c["lab"].get("topology_file") for c in matrix["modes"].values()), None)
    ladders = {mode: first_ladder(build_results(report_dir / mode)["tests"]) for mode in matrix["modes"]}
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["j2", "html"]))
    page = env.get_template("matrix.html.j2").render(
        m=matrix, title=report_dir.name, drawing=topology_drawing(topology_file, []), ladders=ladders,
        packet_rows=side_by_side({mode: ladder and ladder["headers"] for mode, ladder in ladders.items()}))
    out = report_dir / "index.html"
    out.write_text(page)
    return out
