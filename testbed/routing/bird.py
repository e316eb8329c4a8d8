"""BIRD 2 per VN node: one daemon with its own config, control socket, pid
file and log in /run/bird/<pathspace>/ (two labs never collide), OSPFv2 on
the tunnel devices only with the lab's hello, dead and cost, the LAN as a
stub, routes exported to the kernel; BFD on the tunnels when the lab asks.
Base interfaces carry no OSPF: base and VN routing never mix.

The suite reads each daemon's view over its control socket (birdc's
protocol, testbed/routing/birdctl.py) and counts adjacency changes in the
daemon's own log (BIRD keeps no per-neighbour change counter).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from testbed import events
from testbed.errors import EnvironmentProblem, TestbedError
from testbed.parallel import parallel
from testbed.routing import birdctl
from testbed.processes import find_pids
from testbed.routing.daemons import node_space, stop_lab
from testbed.runtime.base import Runtime
from testbed.topology.model import BfdParams, OspfParams
from testbed.topology.plan import LAN_DEVICE, NodePlan

BIRD = Path("/usr/sbin/bird")
BIRD_RUN = Path("/run/bird")
OSPF, KERNEL = "vn", "krt"       # the OSPF and kernel protocols' names in the config
SOCKET, LOG, CONFIG, PID = "bird.ctl", "bird.log", "bird.conf", "bird.pid"
# "ospf: Neighbor 10.0.0.2 on tun-ab changed state from Loading to Full"
STATE_CHANGE = re.compile(rf"{OSPF}: Neighbor \S+ on (\S+) changed state from ")


def bird_config(node: NodePlan, ospf: OspfParams, bfd: BfdParams | None, log: Path) -> str:
    with_bfd = bool(bfd and bfd.enabled)
    lines = [f"router id {node.lan_address};", f'log "{log}" all;',
             "protocol device { scan time 10; }",
             # Only OSPF's routes are in the table: all of them to the kernel,
             # equal-cost paths merged as FRR's zebra installs them. The
             # kernel's table is read again every 2 s (default 60): routes the
             # kernel dropped with a deleted device come back only then.
             f"protocol kernel {KERNEL} {{ ipv4 {{ import none; export all; }}; merge paths yes; scan time 2; }}",
             f"protocol ospf v2 {OSPF} {{",
             "  debug { events };       # neighbour state changes, counted from the log",
             "  ecmp yes;",
             "  ipv4 { import all; export none; };",
             "  area 0 {",
             f'    interface "{LAN_DEVICE}" {{ stub yes; }};']
    for tunnel in node.tunnels:
        # Retransmit after 2 s (BIRD's least; default 5): an LSA refused for
        # arriving within MinLSArrival would otherwise hold an adjacency in Loading.
        lines.append(f'    interface "{tunnel.device}" {{ type ptp; hello {ospf.hello}; dead {ospf.dead}; '
                     f'cost {tunnel.cost}; retransmit 2;{" bfd yes;" if with_bfd else ""} }};')
    lines += ["  };", "}"]
    if with_bfd and node.tunnels:
        devices = ", ".join(f'"{t.device}"' for t in node.tunnels)
        lines.append(f"protocol bfd {{ interface {devices} {{ interval {bfd.interval_ms} ms; "
                     f"multiplier {bfd.multiplier}; }}; }}")
    return "\n".join(lines) + "\n"


def _lab_daemons(lab: str, node: str | None) -> list[int]:
    """Pids of a lab's (or one node's) BIRD daemons: the control socket's
    folder names the lab and node."""
    wanted = str(BIRD_RUN / node_space(lab, node)) + "/" if node else str(BIRD_RUN / node_space(lab, ""))
    return find_pids(lambda argv: os.path.basename(argv[0]) == "bird" and "-s" in argv[:-1]
                     and argv[argv.index("-s") + 1].startswith(wanted))


def stop_lab_daemons(lab: str, node: str | None = None) -> None:
    """Kill a lab's BIRD daemons (one node's, or all) and remove their folders."""
    stop_lab(lambda: _lab_daemons(lab, node), f"BIRD daemons of lab '{lab}'", BIRD_RUN, lab, node)


def start_all(instances: list["BirdNode"]) -> None:
    parallel([instance.start for instance in instances])


class BirdNode:
    def __init__(self, runtime: Runtime, node: str):
        self.runtime = runtime
        self.node = node
        self.run_dir = BIRD_RUN / node_space(runtime.lab, node)

    def write_config(self, plan: NodePlan, ospf: OspfParams, bfd: BfdParams | None = None) -> None:
        if not self.runtime.host_path(self.node, BIRD).exists():
            raise EnvironmentProblem(f"{self.node}: BIRD is not installed there (Debian package bird2)")
        folder = self.runtime.host_path(self.node, self.run_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG).write_text(bird_config(plan, ospf, bfd, self.run_dir / LOG))

    def start(self) -> None:
        """BIRD checks its config, opens its socket, then detaches."""
        argv = [str(BIRD), "-c", str(self.run_dir / CONFIG), "-s", str(self.run_dir / SOCKET),
                "-P", str(self.run_dir / PID)]
        done = self.runtime.run_daemon(self.node, argv, timeout=60)
        if done.returncode != 0:
            raise TestbedError(f"{self.node}: bird did not start: {(done.stderr or done.stdout).strip()}")

    def stop(self) -> None:
        stop_lab_daemons(self.runtime.lab, self.node)

    def show(self, command: str) -> list[str]:
        """The daemon's answer to a `show` command, line by line."""
        lines = birdctl.ask(self.runtime.host_path(self.node, self.run_dir), SOCKET, command)
        events.command(self.node, ["birdc", "-s", str(self.run_dir / SOCKET), command], 0, "\n".join(lines), "")
        return lines

    def ospf_neighbors(self) -> list[dict[str, str]]:
        """One dict per neighbour: router_id, state ('Full/PtP'), dtime (seconds), interface, address."""
        rows = []
        for line in self.show(f"show ospf neighbors {OSPF}"):
            fields = line.split()
            if len(fields) == 6 and re.fullmatch(r"[\d.]+", fields[0]) and "/" in fields[2]:
                rows.append(dict(zip(("router_id", "priority", "state", "dtime", "interface", "address"), fields)))
        return rows

    def ospf_interfaces(self) -> list[str]:
        """Devices OSPF runs on (stub ones included)."""
        return sorted(m.group(1) for line in self.show(f"show ospf interface {OSPF}")
                      if (m := re.match(r"Interface (\S+) \(", line.strip())))

    def ospf_state_changes(self) -> dict[str, int]:
        """Tunnel device -> neighbour state changes the daemon logged so far."""
        counts: dict[str, int] = {}
        try:
            text = self.runtime.host_path(self.node, self.run_dir / LOG).read_text(errors="replace")
        except OSError as error:
            raise TestbedError(f"{self.node}: BIRD's log: {error.strerror}") from None
        for match in STATE_CHANGE.finditer(text):
            counts[match.group(1)] = counts.get(match.group(1), 0) + 1
        return counts

    def bfd_sessions(self) -> dict[str, str]:
        """Tunnel device -> BFD session state ('up', 'down', ...)."""
        sessions = {}
        for line in self.show("show bfd sessions"):
            fields = line.split()
            if len(fields) >= 3 and re.fullmatch(r"[\d.]+", fields[0]):
                sessions[fields[1]] = fields[2].lower()
        return sessions
