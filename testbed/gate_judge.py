"""The gate's stages judged, each as its own command judges it, from what
the pools wrote (results.json per run, runs-<series>.json per pool)."""
from __future__ import annotations

import json

from testbed.gate import GATE_REPORTS, runs_file
from testbed.paths import REPORTS
from testbed.topology.model import DATAPATH_MODES


def _fill(stages) -> None:
    """Each run's exit code and time, as its pool recorded them (None: it did not run)."""
    found = {}
    for kernel in stages.series():
        path = runs_file(kernel)
        if path.exists():
            found |= json.loads(path.read_text())
    for run in stages.all():
        done = found.get(str(run.report), {})
        run.returncode, run.seconds = done.get("returncode"), done.get("seconds", 0.0)


def _pages(stages) -> None:
    """Each run's report page, written here (natively) rather than in the guest."""
    from testbed.parallel import parallel
    from testbed.report.html import write_report
    folders = [run.report for run in stages.all() if (run.report / "junit.xml").exists()]
    parallel([lambda folder=folder: write_report(folder) for folder in folders])


def judge_all(stages, skipped_kernels: dict[str, str]) -> bool:
    from testbed import implementations, matrix, profiles, variants
    from testbed.report.compare import compare_files
    _fill(stages)
    _pages(stages)
    plan, verdicts = stages.plan, {}
    if plan.matrix:
        print("== gate: the datapath mode matrix", flush=True)
        verdicts["matrix"] = matrix.judge_matrices(stages.matrix_dirs, list(DATAPATH_MODES), stages.runs["matrix"])
    if plan.implementations:
        print("== gate: the implementation matrix", flush=True)
        found = implementations.load_implementations()
        skipped = {name: reason for name in stages.implementation_names
                   for kernel, reason in skipped_kernels.items() if implementations.kernel_of(found, name) == kernel}
        verdicts["implementations"] = implementations.judge_implementations(
            stages.implementation_dir, stages.implementation_names, skipped)
    if plan.variants:
        print("== gate: the variants", flush=True)
        verdicts["variants"] = variants.judge_variants(stages.runs["variants"])
    for old, new in plan.compare:
        print(f"== gate: {old} against {new} (a difference is a bug)", flush=True)
        paths = [REPORTS / old / "results.json", REPORTS / new / "results.json"]
        verdicts[f"compare {new}"] = compare_files(paths, GATE_REPORTS / f"compare-{new}.html", strict=True) == 0
    if plan.profiles:
        print("== gate: the negative profiles", flush=True)
        verdicts["profiles"] = profiles.judge_profiles(stages.runs["profiles"])
    failed = [name for name, ok in verdicts.items() if not ok]
    print("== gate: stages " + ", ".join(f"{name} {'passed' if ok else 'FAILED'}" for name, ok in verdicts.items()))
    return not failed
