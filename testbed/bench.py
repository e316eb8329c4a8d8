"""`make bench`: the figures the README records, measured, never asserted.

Outer run (on the host): wall time of a whole `iiptran test <topology>`,
guest boot included. Inner run (where the datapath is): bring-up phases.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

from tabulate import tabulate

from testbed.paths import REPORTS


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
    print(tabulate(rows, headers=["round", "datapath set-up s", "up to converged s", "join to converged s",
                                  "down s", "total s"]))


def outer(topology: str) -> None:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "testbed", "test", topology], capture_output=True, text=True)
    wall = time.monotonic() - started
    from testbed.report.html import write_report
    from testbed.topology.loader import load
    report_dir = REPORTS / load(topology).name
    started = time.monotonic()
    write_report(report_dir)
    report_s = time.monotonic() - started
    print(tabulate([[f"iiptran test {topology}", round(wall, 1), done.returncode],
                    [f"report generation for {report_dir.name} (here, from its junit.xml and evidence)",
                     round(report_s, 2), 0]],
                   headers=["what", "wall s (guest boot included)", "exit code"]))


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
