"""When a lab gives up converging, the message says which node's routing
daemon does not run on a virtual link device the node has."""
from __future__ import annotations

from types import SimpleNamespace

from testbed.routing.convergence import unrouted_devices


class _Routing:
    name, dynamic = "frr", True

    def __init__(self, running: dict):
        self.running = running

    def protocol_interfaces(self, lab, node):
        if isinstance(self.running[node], Exception):
            raise self.running[node]
        return self.running[node]


def _lab(running: dict, dynamic: bool = True):
    ends = [("D", SimpleNamespace(device="t-Y")), ("Y", SimpleNamespace(device="t-D"))]
    return SimpleNamespace(active_vn_nodes=lambda: ["D", "Y"], active_link_ends=lambda: ends,
                           routing=_Routing(running), datapath=SimpleNamespace(dynamic_routing=dynamic))


def test_a_device_the_daemon_missed_is_named():
    lab = _lab({"D": ["lan0", "t-Y"], "Y": ["lan0"]})
    assert unrouted_devices(lab) == ["Y's frr does not run on t-D (it runs on lan0)"]


def test_a_daemon_that_cannot_be_asked_says_so_and_a_sound_lab_says_nothing():
    assert unrouted_devices(_lab({"D": ["t-Y"], "Y": OSError("no vty socket")})) == \
        ["Y's frr could not be asked (no vty socket)"]
    assert unrouted_devices(_lab({"D": ["t-Y"], "Y": ["t-D", "lan0"]})) == []
    assert unrouted_devices(_lab({"D": [], "Y": []}, dynamic=False)) == []
