"""`make bench`: the figures the README records, measured, never asserted.

Outer run (on the host): wall time of a whole `iiptran test <topology>`,
guest boot included. Inner run (where the datapath is): bring-up phases.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from tabulate import tabulate

from testbed.keying.ikev2 import Ikev2Keying
from testbed.paths import BENCH_DIR, REPORTS


def inner(topology: str, rounds: int) -> None:
    from testbed.lab import Lab
    rows = []
    for i in range(rounds):
        started = time.monotonic()
        lab = Lab.up(topology, f"bench{i}")
        try:
            joining = [n.name for n in lab.plan.vn_nodes if not lab.active(n.name)]
            join_started = time.monotonic()
            for node in joining:
                lab.join(node)
            joined = time.monotonic() - join_started
        finally:
            down_started = time.monotonic()
            lab.down()
        rows.append([i + 1, lab.timings["datapath_s"], lab.timings["up_to_converged_s"],
                     round(joined, 2) if joining else "-", round(time.monotonic() - down_started, 2),
                     round(time.monotonic() - started, 2)])
    headers = ["round", "datapath set-up s", "up to converged s", "join to converged s", "down s", "total s"]
    print(tabulate(rows, headers=headers))
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    (BENCH_DIR / "bringup.json").write_text(json.dumps([dict(zip(headers, row)) for row in rows], indent=1) + "\n")


def _timed_test(topology: str, *options: str) -> tuple[float, int]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "testbed", "test", topology, *options], capture_output=True,
                          text=True)
    return round(time.monotonic() - started, 1), done.returncode


def outer(topology: str) -> None:
    from testbed.topology.overrides import with_overrides
    from testbed.report.html import write_report
    from testbed.report.summary import measurements
    from testbed.topology.loader import load
    from testbed.variants import folder_name
    rows = []
    wall, code = _timed_test(topology)
    report_dir = REPORTS / load(topology).name
    rows.append([f"iiptran test {topology}", wall, code, *_suite_seconds(report_dir)])
    started = time.monotonic()
    write_report(report_dir)
    rows.append([f"report generation for {report_dir.name} (here, from its junit.xml and evidence)",
                 round(time.monotonic() - started, 2), 0, "-", "-"])
    wall, code = _timed_test(topology, "--keying", Ikev2Keying.name)
    ike_report = REPORTS / folder_name(with_overrides(load(topology), {"keying": Ikev2Keying.name}))
    rows.append([f"iiptran test {topology} --keying ikev2", wall, code, *_suite_seconds(ike_report)])
    print(tabulate(rows, headers=["what", "wall s (guest boot included)", "exit code", "bring-up s", "checks s"]))
    found = ike_report / "measurements.json"
    figures = measurements(json.loads(found.read_text())) if found.exists() else [("IKE figures", "none recorded")]
    print(tabulate(figures, headers=["measured by the IKEv2 checks", "figure"]))
    _write_bench_json(rows, figures)


def _suite_seconds(report_dir) -> tuple:
    """The run's own time, from its report: the lab's bring-up (up to
    converged) and the checks (pytest's time per test, summed)."""
    try:
        lab = json.loads((report_dir / "lab.json").read_text())
        tests = json.loads((report_dir / "results.json").read_text())["tests"].values()
        return lab["timings"]["up_to_converged_s"], round(sum(t["seconds"] for t in tests), 1)
    except (OSError, ValueError, KeyError, TypeError):
        return "-", "-"


def _write_bench_json(runs: list, ike_figures: list) -> None:
    """Every figure of this `make bench` in one file, and the scale plot."""
    from testbed.bench_scale import SCALE_FILE, plot, table

    def read(path):
        return json.loads(path.read_text()) if path.exists() else None
    scale = read(SCALE_FILE)
    if scale:
        print(table(scale))
        print(f"iiptran: bench: plot written to {plot(scale, BENCH_DIR / 'scale.png')}")
    from testbed.bench_datapath import DATAPATH_FILE, table as datapath_table
    datapath = read(DATAPATH_FILE)
    if datapath:
        print(datapath_table(datapath))
    from testbed.bench_plain import PLAIN_FILE
    plain = read(PLAIN_FILE)
    if plain:
        print(tabulate([[r["round"], r["plain_script_s"], r["iiptran_up_s"], r["ratio"]] for r in plain["rows"]],
                       headers=["round", "plain script to converged s", "iiptran up to converged s", "ratio"]))
    bench = {"measured": time.strftime("%Y-%m-%d %H:%M"), "bringup": read(BENCH_DIR / "bringup.json"),
             "datapath": datapath, "plain_reference": plain,
             "runs": [dict(zip(["what", "wall_s", "exit_code", "bring_up_s", "checks_s"], row)) for row in runs],
             "ike": [list(f) for f in ike_figures], "scale": scale}
    (BENCH_DIR / "bench.json").write_text(json.dumps(bench, indent=1) + "\n")
    print(f"iiptran: bench: figures written to {BENCH_DIR / 'bench.json'}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m testbed.bench")
    parser.add_argument("topology", nargs="?", default="fig6")
    parser.add_argument("--inner", action="store_true", help="measure bring-up phases (needs the datapath)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.inner:
        inner(args.topology, args.rounds)
    else:
        outer(args.topology)


if __name__ == "__main__":
    main()
