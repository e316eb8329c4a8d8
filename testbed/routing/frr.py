"""FRR (zebra + ospfd, and bfdd when the lab asks for BFD) per VN node:
OSPF on the tunnel devices only.

Each node's daemons get their own pathspace (`-N`), so their vty sockets
and pid files live in /run/frr/<pathspace>/ and two labs never collide.
Base interfaces carry no OSPF: base and VN routing never mix.
"""
from __future__ import annotations

import json
from pathlib import Path

from testbed import events
from testbed.errors import EnvironmentProblem, TestbedError
from testbed.parallel import parallel
from testbed.routing import vty
from testbed.processes import find_pids
from testbed.routing.daemons import stop_lab
from testbed.routing.daemons import node_space as pathspace
from testbed.runtime.base import Runtime
from testbed.topology.model import BfdParams, OspfParams
from testbed.topology.plan import LAN_DEVICE, NodePlan

FRR_DIR = Path("/usr/lib/frr")
FRR_RUN = Path("/run/frr")
DAEMONS = ("zebra", "bfdd", "ospfd")      # in start order; bfdd only with BFD on
# zebra and bfdd send nothing by themselves (BFD sessions come from ospfd),
# so they may start while the virtual links are still being built.
EARLY = ("zebra", "bfdd")
LATE = tuple(daemon for daemon in DAEMONS if daemon not in EARLY)


BFD_PROFILE = "iiptran"


def ospfd_config(node: NodePlan, ospf: OspfParams, log: Path, bfd: bool = False) -> str:
    lines = ["frr defaults traditional", f"hostname {node.name}", f"log file {log}", "!"]
    for tunnel in node.tunnels:
        lines += [f"interface {tunnel.device}",
                  " ip ospf network point-to-point",
                  f" ip ospf hello-interval {ospf.hello}",
                  f" ip ospf dead-interval {ospf.dead}",
                  f" ip ospf cost {tunnel.cost}",
                  " ip ospf area 0"]
        lines += [" ip ospf bfd", f" ip ospf bfd profile {BFD_PROFILE}"] if bfd else []
        lines += ["!"]
    lines += [f"interface {LAN_DEVICE}", " ip ospf area 0", "!"]
    router_id = node.lan_address
    lines += ["router ospf", f" ospf router-id {router_id}", f" passive-interface {LAN_DEVICE}",
              # FRR's defaults pace SPF and LSA origination by seconds; a lab
              # converges in about a quarter of the time without that pacing.
              " timers throttle spf 0 50 1000", " timers throttle lsa all 0",
              " timers lsa min-arrival 0", "!"]
    return "\n".join(lines) + "\n"


def bfdd_config(node: NodePlan, bfd: BfdParams, log: Path) -> str:
    """One profile for every session; OSPF creates a session per tunnel peer."""
    return "\n".join(["frr defaults traditional", f"hostname {node.name}", f"log file {log}", "!", "bfd",
                      f" profile {BFD_PROFILE}", f"  detect-multiplier {bfd.multiplier}",
                      f"  receive-interval {bfd.interval_ms}", f"  transmit-interval {bfd.interval_ms}",
                      " !", "!"]) + "\n"


def zebra_config(node: NodePlan, log: Path) -> str:
    return f"frr defaults traditional\nhostname {node.name}\nlog file {log}\n!\n"


def _lab_daemons(lab: str, node: str | None) -> list[int]:
    """Pids of FRR daemons of a lab (or of one node), by pathspace."""
    def matches(argv: list[str]) -> bool:
        if not argv[0].startswith(str(FRR_DIR)) or "-N" not in argv[:-1]:
            return False
        space = argv[argv.index("-N") + 1]
        return space == pathspace(lab, node) if node else space.startswith(pathspace(lab, ""))
    return find_pids(matches)


def stop_lab_daemons(lab: str, node: str | None = None) -> None:
    """Kill a lab's FRR daemons (one node's, or all) and remove their folders."""
    stop_lab(lambda: _lab_daemons(lab, node), f"FRR daemons of lab '{lab}'", FRR_RUN, lab, node)


def start_all(instances: list["FrrNode"], daemons: tuple[str, ...] = DAEMONS) -> None:
    """zebra everywhere, then bfdd, then ospfd (of `daemons`), each wave in
    parallel: a daemon takes about a second to start under emulation."""
    for daemon in daemons:
        parallel([lambda frr=frr: frr.start_daemon(daemon) for frr in instances if daemon in frr.daemons])


class FrrNode:
    def __init__(self, runtime: Runtime, node: str):
        self.runtime = runtime
        self.node = node
        self.pathspace = pathspace(runtime.lab, node)
        # Config, logs, pid files and vty sockets in one folder the daemons
        # (which drop to the frr user) can read and write.
        self.run_dir = FRR_RUN / self.pathspace
        self.conf_dir = self.run_dir
        self.daemons = ("zebra", "ospfd")

    def write_config(self, plan: NodePlan, ospf: OspfParams, bfd: BfdParams | None = None) -> None:
        """Config files in the node's filesystem, owned by the node's frr user."""
        folder = self.runtime.host_path(self.node, self.run_dir)
        if not self.runtime.host_path(self.node, FRR_DIR / "zebra").exists():
            raise EnvironmentProblem(f"{self.node}: FRR is not installed there (Debian package frr)")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "zebra.conf").write_text(zebra_config(plan, self.conf_dir / "zebra.log"))
        with_bfd = bool(bfd and bfd.enabled)
        (folder / "ospfd.conf").write_text(ospfd_config(plan, ospf, self.conf_dir / "ospfd.log", with_bfd))
        if with_bfd:
            (folder / "bfdd.conf").write_text(bfdd_config(plan, bfd, self.conf_dir / "bfdd.log"))
        self.daemons = ("zebra", "bfdd", "ospfd") if with_bfd else ("zebra", "ospfd")
        # By name inside the node: the frr user's id differs between host and image.
        files = [FRR_RUN, self.run_dir, *(self.conf_dir / f"{d}.conf" for d in self.daemons)]
        self.runtime.run(self.node, ["chown", "frr:frr", *map(str, files)], check=True)

    def start_daemon(self, daemon: str) -> None:
        argv = [str(FRR_DIR / daemon), "-d", "-N", self.pathspace,
                "-f", str(self.conf_dir / f"{daemon}.conf"),
                "-i", str(self.run_dir / f"{daemon}.pid")]
        done = self.runtime.run_daemon(self.node, argv, timeout=60)
        if done.returncode != 0:
            raise TestbedError(f"{self.node}: {daemon} did not start: {done.stderr.strip()}")

    def stop(self) -> None:
        stop_lab_daemons(self.runtime.lab, self.node)

    def show(self, daemon: str, command: str) -> str:
        """A daemon's answer to a `show` command, over its vty socket."""
        out = vty.ask(self.runtime.host_path(self.node, self.run_dir), daemon, command)
        # Recorded as the vtysh command line that asks the same, to replay by hand.
        events.command(self.node, ["vtysh", "-N", self.pathspace, "-d", daemon, "-c", command], 0, out, "")
        return out

    def vtysh_config(self, lines: list[str]) -> None:
        argv = ["vtysh", "-N", self.pathspace, "-c", "configure terminal"]
        for line in lines:
            argv += ["-c", line]
        done = self.runtime.run(self.node, argv)
        if done.returncode != 0:
            raise TestbedError(f"{self.node}: vtysh config {lines} failed: {done.stdout.strip()}")

    def show_json(self, daemon: str, command: str) -> dict:
        out = self.show(daemon, command)
        try:
            return json.loads(out)
        except json.JSONDecodeError:
            raise TestbedError(f"{self.node}: '{command}' did not return JSON: {out[:200]}") from None

    def ospf_interfaces(self) -> list[str]:
        """Devices OSPF runs on (passive ones included)."""
        return sorted(self.show_json("ospfd", "show ip ospf interface json").get("interfaces", {}))

    def ospf_neighbors(self) -> dict[str, tuple[str, int]]:
        """Interface device -> (neighbour state, e.g. 'Full/-'; milliseconds
        until it is declared dead, reset by each hello), from one reading."""
        return {device: (entry.get("state") or entry.get("nbrState", ""), int(entry.get("deadTimeMsecs", 0)))
                for device, entry in _neighbour_entries(self.show_json("ospfd", "show ip ospf neighbor json"))}

    def ospf_state_changes(self) -> dict[str, int]:
        """Interface device -> how many times its neighbour's state changed (a drop and return shows)."""
        return {device: int(entry.get("stateChangeCounter", 0))
                for device, entry in _neighbour_entries(self.show_json("ospfd", "show ip ospf neighbor detail json"))}

    def bfd_peers(self) -> dict[str, str]:
        """Tunnel device -> BFD session status ('up', 'down', ...), from bfdd."""
        return {peer.get("interface", ""): peer.get("status", "")
                for peer in json.loads(self.show("bfdd", "show bfd peers json") or "[]")}


def _neighbour_entries(data: dict) -> list[tuple[str, dict]]:
    """(interface device, entry) for each neighbour in ospfd's JSON (ifaceName is 'device:address')."""
    return [(entry.get("ifaceName", "").split(":")[0], entry)
            for entries in data.get("neighbors", {}).values() for entry in entries]
