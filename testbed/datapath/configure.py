"""Nodes that configure themselves: a lab file may name, for every VN node
or for one, a configuration program (`configure`, an executable) that
builds the node's tunnels, IPsec and routing its own way. The testbed
builds the base network and the node's LAN, writes the node's plan as
JSON on the program's stdin, and then judges whatever the program made,
as it judges its own configuration.

The plan: the node, its namespace and the argv prefix that runs a command
inside it, its base and LAN addresses, the tunnel TTL, OSPF and BFD
parameters, the routing daemon with the folder and pathspace it must use
(so that the suite can ask it and `down` can find it), and per active
virtual link the device name, both base and VN addresses, cost and the SA
pair with its keys (`sa_out`, `sa_in`; both ends get the same keys). The
program runs once per node with event `up`, and again with `links-added` and
`new_links` when a joining node brings new links to it.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from testbed import events
from testbed.errors import TestbedError
from testbed.routing import bird
from testbed.routing.bird import BIRD_RUN
from testbed.routing.daemons import node_space
from testbed.routing.frr import FRR_RUN
from testbed.topology.loader import configure_path
from testbed.topology.model import node_configure, node_routing
from testbed.topology.plan import LAN_DEVICE

CONFIGURE_TIMEOUT = 180.0


def self_configured(lab) -> set[str]:
    return {node for node in lab.topology.vn_nodes if node_configure(lab.topology, node)}


def _routing(daemon: str, space: str) -> dict:
    """Where the node's daemon must live for the suite to ask it and `down` to find it."""
    if daemon == "frr":
        return {"daemon": daemon, "pathspace": space, "folder": str(FRR_RUN / space),
                "how": "start FRR's daemons with -N <pathspace>"}
    if daemon == "bird":
        folder = BIRD_RUN / space
        return {"daemon": daemon, "pathspace": space, "folder": str(folder), "socket": str(folder / bird.SOCKET),
                "log": str(folder / bird.LOG),
                "how": f"bird -s <socket>; log to <log> with debug {{ events }} in an OSPF protocol "
                       f"named '{bird.OSPF}'"}
    return {"daemon": daemon, "pathspace": space, "folder": None, "how": "no daemon: install the routes yourself"}


def _sa(sa) -> dict:
    return {"spi": f"0x{sa.spi:08x}", "reqid": sa.reqid, "algorithm": sa.algorithm, "crypto": sa.xfrm_crypto()}


def node_document(lab, node: str, event: str, new_links: list[str]) -> dict:
    plan = lab.plan.nodes[node]
    defaults = lab.topology.defaults
    daemon = node_routing(lab.topology, node)
    space = node_space(lab.name, node)
    tunnels = []
    for tunnel in plan.tunnels:
        if tunnel.label not in lab.links:
            continue
        out, back = lab.link_sas(node, tunnel.peer)
        tunnels.append({"label": tunnel.label, "device": tunnel.device, "peer": tunnel.peer,
                        "local_base": tunnel.local_base, "remote_base": tunnel.remote_base,
                        "vn_address": tunnel.vn_address, "peer_vn_address": tunnel.peer_vn_address,
                        "prefixlen": tunnel.prefixlen, "subnet": tunnel.subnet, "cost": tunnel.cost,
                        "sa_out": _sa(out), "sa_in": _sa(back)})
    return {"lab": lab.name, "node": node, "event": event, "new_links": new_links,
            "backend": lab.topology.backend, "netns": lab.runtime.netns(node), "exec": lab.runtime.exec_argv(node, []),
            "base_address": plan.base_address, "base_device": plan.veths[0].device,
            "lan": plan.lan, "lan_device": LAN_DEVICE, "tunnel_ttl": defaults.tunnel.ttl,
            "ospf": {"hello": defaults.ospf.hello, "dead": defaults.ospf.dead},
            "bfd": {"enabled": defaults.bfd.enabled, "interval_ms": defaults.bfd.interval_ms,
                    "multiplier": defaults.bfd.multiplier},
            "routing": _routing(daemon, space),
            "tunnels": tunnels}


def run_configure(lab, node: str, event: str, new_links: list[str] | None = None) -> None:
    """The node's configuration program with its plan on stdin; TestbedError
    naming the node, the program and its error when it fails."""
    path = configure_path(Path(lab.topology_path), node_configure(lab.topology, node))
    document = json.dumps(node_document(lab, node, event, new_links or []), indent=1)
    try:
        done = subprocess.run([str(path)], input=document, capture_output=True, text=True, errors="replace",
                              timeout=CONFIGURE_TIMEOUT, env={**os.environ, "IIPTRAN_LAB": lab.name, "IIPTRAN_NODE": node})
    except subprocess.TimeoutExpired:
        raise TestbedError(f"{node}: configuration program {path} ({event}) did not finish in {CONFIGURE_TIMEOUT:.0f} s") \
            from None
    except OSError as error:
        raise TestbedError(f"{node}: cannot run configuration program {path}: {error.strerror} "
                           "(an executable, or a script starting with #!)") from None
    events.command(node, [str(path), f"<{event} plan on stdin>"], done.returncode, done.stdout, done.stderr)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise TestbedError(f"{node}: configuration program {path} ({event}) failed with exit {done.returncode}: "
                           + " | ".join(said))
