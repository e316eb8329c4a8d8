"""Bring-up at scale, measured (never asserted): generated rings of N VN
nodes brought up where the datapath is, until OSPF has converged, with the
memory their daemons hold and the kernel objects the lab created.

    python -m testbed.bench_scale --inner 4 8 16 32    # where the datapath is
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testbed.paths import BENCH_DIR

SCALE_FILE = BENCH_DIR / "scale.json"


def _rss_kb(pids: list[str]) -> int:
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue      # gone since it was listed
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total


def _footprint(lab) -> dict:
    """Daemons' memory (every process in the VN nodes' namespaces) and the
    kernel objects the lab holds, read from the kernels."""
    from testbed.probe import inspect
    nodes = lab.active_vn_nodes()
    pids = []
    for node in nodes:
        listed = subprocess.run(["ip", "netns", "pids", lab.runtime.netns(node)], capture_output=True, text=True)
        pids += listed.stdout.split()
    sads = lab.observe_sas()
    interfaces = sum(len(inspect.devices(lab.runtime, n)) for n in lab.plan.nodes)
    rss_mb = _rss_kb(pids) / 1024
    return {"processes": len(pids), "rss_mb": round(rss_mb, 1), "rss_per_node_mb": round(rss_mb / max(1, len(nodes)), 1),
            "sas": sum(len(s.states) for s in sads.values()), "policies": sum(len(s.policies) for s in sads.values()),
            "interfaces": interfaces}


def measure(nodes: int, folder: Path, routing: str = "frr") -> dict:
    from testbed.lab import Lab
    from testbed.topology.generate import Request, write
    path = write(Request("ring", nodes, bfd=False), folder / f"ring{nodes}.yaml")   # OSPF alone, as measured
    started = time.monotonic()
    lab = Lab.up(str(path), f"scale{nodes}", {"routing": routing})
    try:
        row = {"nodes": nodes, "routing": routing, "up_wall_s": round(time.monotonic() - started, 1),
               **lab.timings, **_footprint(lab)}
    finally:
        down_started = time.monotonic()
        lab.down()
    row["down_s"] = round(time.monotonic() - down_started, 1)
    return row


def _routing(row: dict) -> str:
    """A row's routing stack (rows measured before BIRD existed were FRR's)."""
    return row.get("routing", "frr")


def inner(sizes: list[int], routing: str = "frr") -> list[dict]:
    """Measure each size; the rows replace those of the same routing and
    size in the scale file (FRR and BIRD rows side by side)."""
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for nodes in sizes:
            row = measure(nodes, Path(folder), routing)
            print(f"iiptran: bench: ring of {nodes} ({routing}): converged {row['up_to_converged_s']} s after "
                  f"start, {row['rss_mb']} MB in {row['processes']} processes", flush=True)
            rows.append(row)
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    try:
        kept = json.loads(SCALE_FILE.read_text())["rows"]
    except (OSError, ValueError, KeyError):
        kept = []
    new = {(row["routing"], row["nodes"]) for row in rows}
    merged = sorted([row for row in kept if (_routing(row), row["nodes"]) not in new] + rows,
                    key=lambda row: (_routing(row), row["nodes"]))
    SCALE_FILE.write_text(json.dumps({"measured": time.strftime("%Y-%m-%d %H:%M"), "rows": merged}, indent=1) + "\n")
    return rows


COLUMNS = [("routing", "routing"), ("nodes", "VN nodes"), ("up_to_converged_s", "converged s"),
           ("datapath_s", "datapath set-up s"), ("routing_started_s", "daemons started s"),
           ("rss_mb", "daemons' RSS MB"), ("rss_per_node_mb", "MB per node"),
           ("processes", "processes"), ("sas", "SAs"), ("policies", "policies"), ("interfaces", "interfaces"),
           ("down_s", "down s")]


def table(data: dict) -> str:
    from tabulate import tabulate
    rows = [[_routing(row) if key == "routing" else row.get(key, "-") for key, _ in COLUMNS] for row in data["rows"]]
    return tabulate(rows, headers=[title for _, title in COLUMNS])


def plot(data: dict, out: Path) -> Path:
    """Convergence time and memory against N, one PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    nodes = sorted({r["nodes"] for r in data["rows"]})
    for routing in sorted({_routing(r) for r in data["rows"]}):
        rows = [r for r in data["rows"] if _routing(r) == routing]
        sizes = [r["nodes"] for r in rows]
        left.plot(sizes, [r["up_to_converged_s"] for r in rows], marker="o", label=routing)
        right.plot(sizes, [r["rss_mb"] for r in rows], marker="o", label=routing)
    left.set(xlabel="VN nodes (generated ring)", ylabel="s", title="start to OSPF converged")
    left.legend(fontsize=8)
    right.set(xlabel="VN nodes (generated ring)", ylabel="MB", title="daemons' resident memory")
    for axis in (left, right):
        axis.grid(alpha=.3)
        axis.set_xticks(nodes)
    figure.suptitle(f"bring-up at scale, measured {data['measured']}", fontsize=9)
    figure.tight_layout()
    figure.savefig(out, dpi=90)
    plt.close(figure)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m testbed.bench_scale")
    parser.add_argument("sizes", type=int, nargs="*", help="VN nodes per generated ring")
    parser.add_argument("--inner", action="store_true", help="measure here (needs the datapath)")
    parser.add_argument("--routing", choices=("frr", "bird"), default="frr",
                        help="the rings' OSPF daemon (default frr)")
    args = parser.parse_args()
    if args.inner:
        inner(args.sizes or [4, 8, 16, 32], args.routing)
        return
    if not SCALE_FILE.exists():
        sys.exit(f"python -m testbed.bench_scale: no {SCALE_FILE}; measure first with --inner where the datapath is")
    data = json.loads(SCALE_FILE.read_text())
    print(table(data))
    print(f"iiptran: bench: plot written to {plot(data, BENCH_DIR / 'scale.png')}")


if __name__ == "__main__":
    main()
