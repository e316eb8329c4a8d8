"""Does this kernel have what the IIPtran datapath needs? Ask it, in a throwaway namespace."""
from __future__ import annotations

import os
import subprocess

from pyroute2.netlink.exceptions import NetlinkError

from testbed.runtime.netlink import rtnl

PROBE_KEY = "0x" + "11" * 20


def _try_link(ns, what: str, **spec) -> str | None:
    try:
        ns.link("add", **spec)
        return None
    except NetlinkError as exc:
        return f"{what}: {exc.args[1] if len(exc.args) > 1 else exc}"


def kernel_problems() -> list[str]:
    """Missing features, each with the kernel's own answer; empty if all present."""
    name = f"iipt-probe-{os.getpid()}"
    created = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, check=False)
    if created.returncode != 0:
        return [f"network namespaces: {created.stderr.strip()}"]
    problems = []
    try:
        with rtnl(name) as ns:
            problems.append(_try_link(ns, "veth", ifname="probe0", kind="veth", peer={"ifname": "probe1"}))
            problems.append(_try_link(ns, "ipip", ifname="probe2", kind="ipip",
                                      ipip_local="192.0.2.1", ipip_remote="192.0.2.2"))
        done = subprocess.run(
            ["ip", "-n", name, "xfrm", "state", "add", "src", "192.0.2.1", "dst", "192.0.2.2", "proto", "esp",
             "spi", "0x1000", "mode", "transport", "aead", "rfc4106(gcm(aes))", PROBE_KEY, "128"],
            capture_output=True, text=True, check=False)
        if done.returncode != 0:
            problems.append(f"esp4 with rfc4106(gcm(aes)) via xfrm_user: {done.stderr.strip()}")
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
    return [p for p in problems if p]
