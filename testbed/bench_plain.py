"""A reference for the testbed's bring-up time: the same lab (namespaces,
veths, addresses, routes, ipip devices, SAs, policies, FRR OSPF) set up by
a plain shell script (`ip -batch` per namespace and FRR's daemons), with no
Python in the loop, timed to converged in the same place as `iiptran up`.

    python -m testbed.bench_plain --inner fig6 --rounds 3   # where the datapath is
"""
from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from testbed.datapath import ipsec
from testbed.paths import BENCH_DIR
from testbed.routing.frr import FRR_DIR, FRR_RUN, ospfd_config, zebra_config
from testbed.topology.loader import load
from testbed.topology.plan import LAN_DEVICE, LabPlan, build_plan

PLAIN_FILE = BENCH_DIR / "plain.json"
SYSCTLS = ["net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"]


def _ns(prefix: str, node: str) -> str:
    return f"{prefix}-{node}"


def up_script(plan: LabPlan, prefix: str) -> str:
    """The whole lab up with one `ip -batch` for the root namespace (all
    namespaces and veth pairs) and one per node (addresses, routes, tunnels,
    SAs, policies), FRR's daemons in two parallel waves, then a poll until
    every VN node routes every other VN node's LAN over a tunnel (as
    `iiptran up` waits for convergence)."""
    active = [n for n in plan.vn_nodes if not n.detached]     # a detached node joins later, as with `up`
    names = {n.name for n in active}
    root = [f"netns add {_ns(prefix, n)}" for n in plan.nodes]
    per_node: dict[str, list[str]] = {n: ["link set lo up"] for n in plan.nodes}
    made = set()
    for node in plan.nodes.values():
        for veth in node.veths:
            if (veth.peer_node, veth.peer_device) not in made:
                made.add((node.name, veth.device))
                root.append(f"link add {veth.device} netns {_ns(prefix, node.name)} type veth peer name "
                            f"{veth.peer_device} netns {_ns(prefix, veth.peer_node)}")
            per_node[node.name] += [f"addr add {veth.address}/{veth.prefixlen} dev {veth.device}",
                                    f"link set {veth.device} up"]
    for node in plan.nodes.values():
        per_node[node.name] += [f"route add {dst} via {gw}" for dst, gw in node.routes]
    ttl = plan.topology.defaults.tunnel.ttl
    reqid, sas = 100, {}
    for node in active:
        lines = per_node[node.name]
        lines += [f"link add {LAN_DEVICE} type dummy", f"addr add {node.lan} dev {LAN_DEVICE}",
                  f"link set {LAN_DEVICE} up"]
        for t in [t for t in node.tunnels if t.peer in names]:
            lines += [f"link add {t.device} type ipip local {t.local_base} remote {t.remote_base} "
                      f"ttl {ttl} tos inherit pmtudisc",
                      f"addr add {t.vn_address}/{t.prefixlen} dev {t.device}", f"link set {t.device} up"]
            if (t.peer, node.name) in sas:
                back, out = sas[(t.peer, node.name)]
            else:
                out, back = ipsec.link_sas(t, reqid)
                reqid += 2
                sas[(node.name, t.peer)] = (out, back)
            lines += ipsec.xfrm_batch(t.local_base, t.remote_base, out, back)
    script = ["#!/bin/sh", "set -e", "ip -batch - <<'EOF'", *root, "EOF"]
    for node in plan.nodes:
        ns = _ns(prefix, node)
        script += [f"ip netns exec {ns} sysctl -qw {' '.join(SYSCTLS)}",
                   f"ip -n {ns} -batch - <<'EOF'", *per_node[node], "EOF"]
    for daemon in ("zebra", "ospfd"):      # each wave in parallel, as the testbed starts them
        for node in active:
            space = f"{prefix}-{node.name}"
            folder = FRR_RUN / space
            script.append(f"ip netns exec {_ns(prefix, node.name)} {FRR_DIR / daemon} -d -N {space} "
                          f"-f {folder / (daemon + '.conf')} -i {folder / (daemon + '.pid')} &")
        script.append("wait")
    checks = " && ".join(f"ip -n {_ns(prefix, a.name)} route get {b.lan_address} | grep -q ' dev t-'"
                         for a in active for b in active if a is not b)
    script.append(f"until {checks}; do sleep 0.05; done")
    return "\n".join(script) + "\n"


def write_frr_configs(plan: LabPlan, prefix: str) -> None:
    FRR_RUN.mkdir(parents=True, exist_ok=True)
    subprocess.run(["chown", "frr:frr", str(FRR_RUN)], check=True)
    for node in plan.vn_nodes:
        folder = FRR_RUN / f"{prefix}-{node.name}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "zebra.conf").write_text(zebra_config(node, folder / "zebra.log"))
        (folder / "ospfd.conf").write_text(ospfd_config(node, plan.topology.defaults.ospf, folder / "ospfd.log"))
        subprocess.run(["chown", "-R", "frr:frr", str(folder)], check=True)


def down(plan: LabPlan, prefix: str) -> None:
    subprocess.run(["pkill", "-9", "-f", "--", f"-N {prefix}-"], check=False)
    for node in plan.nodes.values():
        subprocess.run(["ip", "netns", "delete", _ns(prefix, node.name)], check=False, capture_output=True)
    for node in plan.vn_nodes:
        subprocess.run(["rm", "-rf", str(FRR_RUN / f"{prefix}-{node.name}")], check=False)


def plain_round(topology: str, prefix: str = "pl") -> float:
    plan = build_plan(load(topology))
    write_frr_configs(plan, prefix)
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as script:
        script.write(up_script(plan, prefix))
    try:
        started = time.monotonic()
        done = subprocess.run(["sh", script.name], capture_output=True, text=True, timeout=300)
        took = time.monotonic() - started
        if done.returncode != 0:
            raise RuntimeError(f"the plain script failed: {done.stderr[-800:]}")
        return round(took, 2)
    finally:
        down(plan, prefix)
        Path(script.name).unlink()


def testbed_round(topology: str) -> float:
    from testbed.lab import Lab
    started = time.monotonic()
    lab = Lab.up(topology, "plainref")
    took = time.monotonic() - started
    lab.down()
    return round(took, 2)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m testbed.bench_plain")
    parser.add_argument("topology", nargs="?", default="fig6")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--inner", action="store_true", help="measure here (needs the datapath)")
    args = parser.parse_args()
    if not args.inner:
        raise SystemExit("python -m testbed.bench_plain: run with --inner where the datapath is")
    rows = []
    for i in range(args.rounds):
        rows.append({"round": i + 1, "plain_script_s": plain_round(args.topology),
                     "iiptran_up_s": testbed_round(args.topology)})
        rows[-1]["ratio"] = round(rows[-1]["iiptran_up_s"] / rows[-1]["plain_script_s"], 2)
        print(f"iiptran: bench: {args.topology} up to converged: plain script {rows[-1]['plain_script_s']} s, "
              f"iiptran up {rows[-1]['iiptran_up_s']} s (x{rows[-1]['ratio']})", flush=True)
    PLAIN_FILE.parent.mkdir(parents=True, exist_ok=True)
    PLAIN_FILE.write_text(json.dumps({"measured": time.strftime("%Y-%m-%d %H:%M"), "topology": args.topology,
                                      "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
