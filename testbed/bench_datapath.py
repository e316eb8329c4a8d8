"""What each datapath mode costs per VN packet, measured in one run on the
same topology, path and algorithm: TCP throughput across the flow's path
(iperf3) and the bytes a VN packet occupies on the base network. Under
software emulation absolute figures mean little, so each mode is also given
as a ratio to IIPtran's.

    python -m testbed.bench_datapath --inner fig6     # where the datapath is
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testbed.paths import BENCH_DIR
from testbed.topology.model import DATAPATH_MODES

DATAPATH_FILE = BENCH_DIR / "datapath.json"
SECONDS = 5
PAYLOAD = 1000                 # ICMP data bytes of the packets whose wire size is measured
PROBES = 5


def _listening(lab, node: str, address: str) -> bool:
    done = lab.runtime.run(node, ["ss", "-Htln", "src", f"{address}:5201"])
    return "5201" in done.stdout


def throughput(lab, src: str, dst: str) -> float:
    """iperf3 TCP, src -> dst between their VN-local addresses, in Mbit/s."""
    from testbed import expect
    from testbed.wait import wait_for
    src_lan, dst_lan = expect.lan_address(lab, src), expect.lan_address(lab, dst)
    server = lab.runtime.popen(dst, ["iperf3", "-s", "-1", "-B", dst_lan], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _listening(lab, dst, dst_lan), f"iperf3 to listen on {dst} {dst_lan}", timeout=20)
        done = lab.runtime.run(src, ["iperf3", "-c", dst_lan, "-B", src_lan, "-t", str(SECONDS), "-J"],
                               timeout=SECONDS + 60)
    finally:
        if server.poll() is None:
            lab.runtime.stop_program(server)
    try:
        result = json.loads(done.stdout)
        return round(result["end"]["sum_received"]["bits_per_second"] / 1e6, 2)
    except (ValueError, KeyError) as exc:
        raise RuntimeError(f"iperf3 {src}->{dst} gave no result ({exc}): {done.stdout[-400:]} {done.stderr[-400:]}")


def wire_bytes(lab, src: str, dst: str, folder: Path) -> tuple[int, int]:
    """(bytes of the VN packet, bytes of the IP packet carrying it on src's access link)."""
    from scapy.layers.inet import IP

    from testbed import expect
    from testbed.probe.flows import access_capture
    from testbed.probe.traffic import ping
    capture = access_capture(lab, folder, src, "datapath", bpf=f"esp and src host {lab.plan.nodes[src].base_address}")
    with capture:
        ping(lab.runtime, src, expect.lan_address(lab, dst), count=PROBES, size=PAYLOAD,
             source=expect.lan_address(lab, src))
    sizes = sorted(p[IP].len for p in capture.packets if IP in p and p[IP].len > PAYLOAD)
    if not sizes:
        raise RuntimeError(f"no ESP packet of {src}'s {PAYLOAD}-byte pings captured on its access link")
    return PAYLOAD + 28, sizes[len(sizes) // 2]


def measure(topology: str, mode: str, folder: Path) -> dict:
    from testbed.lab import Lab
    lab = Lab.up(topology, f"dp{DATAPATH_MODES.index(mode)}", overrides={"datapath": mode})
    try:
        for node in [n.name for n in lab.plan.vn_nodes if not lab.active(n.name)]:
            lab.join(node)
        name, flow = next(iter(lab.topology.flows.items()))
        inner, outer = wire_bytes(lab, flow.src, flow.dst, folder)
        return {"mode": mode, "flow": name, "mbit_s": throughput(lab, flow.src, flow.dst),
                "vn_packet_bytes": inner, "wire_bytes": outer, "overhead_bytes": outer - inner}
    finally:
        lab.down()


def with_ratios(rows: list[dict]) -> list[dict]:
    """Each mode's throughput and wire size as a ratio to the first (IIPtran)."""
    base = rows[0]
    for row in rows:
        row["throughput_ratio"] = round(row["mbit_s"] / base["mbit_s"], 2) if base["mbit_s"] else None
        row["wire_ratio"] = round(row["wire_bytes"] / base["wire_bytes"], 3)
    return rows


def inner(topology: str) -> list[dict]:
    if shutil.which("iperf3") is None:
        sys.exit("iperf3 is not installed (Debian package iperf3; `make bench` installs it)")
    with tempfile.TemporaryDirectory() as folder:
        rows = with_ratios([measure(topology, mode, Path(folder)) for mode in DATAPATH_MODES])
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    DATAPATH_FILE.write_text(json.dumps({"measured": time.strftime("%Y-%m-%d %H:%M"), "topology": topology,
                                         "rows": rows}, indent=1) + "\n")
    print(table({"rows": rows}))
    return rows


def table(data: dict) -> str:
    from tabulate import tabulate
    keys = ["mode", "mbit_s", "throughput_ratio", "vn_packet_bytes", "wire_bytes", "overhead_bytes", "wire_ratio"]
    return tabulate([[row.get(k) for k in keys] for row in data["rows"]],
                    headers=["mode", "Mbit/s", "x IIPtran", "VN packet B", "on the wire B", "overhead B",
                             "wire x IIPtran"])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m testbed.bench_datapath")
    parser.add_argument("topology", nargs="?", default="fig6")
    parser.add_argument("--inner", action="store_true", help="measure here (needs the datapath)")
    args = parser.parse_args()
    if not args.inner:
        sys.exit("python -m testbed.bench_datapath: run with --inner where the datapath is (iiptran run -- ...)")
    inner(args.topology)


if __name__ == "__main__":
    main()
