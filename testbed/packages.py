"""The system packages a make target needs on this machine, and only those.

`make` calls this with the system's python3 before the project's virtual
environment exists, so it uses the standard library and `ip` alone. What
is needed depends on the path the run will take (the datapath natively, or
a QEMU guest when this kernel lacks it), on what the target runs (the
report's browser test, the Docker backend), and on the distribution, whose
package names differ (Ubuntu ships Chromium as a snap).

    python3 -m testbed.packages test-fig6      # names to install, one line
    python3 -m testbed.packages test --explain # and why each is needed
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

CORE = ["frr", "bird2", "iproute2", "jq", "tcpdump", "tshark", "traceroute", "iputils-ping", "procps", "kmod",
        "strongswan-charon", "strongswan-swanctl", "libstrongswan-standard-plugins"]
# libreswan's pluto runs from its package unpacked in the cache (testbed/keying/libreswan_package.py):
# its libraries and NSS's tools come from here.
IKE = ["libevent-pthreads-2.1-7", "libldns3", "libunbound8", "libnss3-tools"]
REPORT = ["graphviz"]
GUEST = ["qemu-system-x86", "busybox-static", "zstd"]
DOCKER = ["docker.io", "mmdebstrap"]
BENCH = ["iperf3"]
BROWSER = {"debian": ["chromium"], "ubuntu": []}     # Ubuntu's chromium is a snap: see browser_note()
# What each make target runs besides a lab.
TARGET_NEEDS = {"test-fig6": set(), "test-fig3": set(), "test": {"browser", "docker"}, "unit": {"browser"},
                "matrix": set(), "variants": {"docker"}, "implementations": set(), "profiles": set(),
                "selftest": {"docker"}, "images": {"docker"}, "bench": {"iperf"}, "deps": set()}
PROBE_NS = f"iipt-pkgprobe-{os.getpid()}"


def distribution(os_release: str = "/etc/os-release") -> str:
    try:
        fields = dict(line.split("=", 1) for line in open(os_release).read().splitlines() if "=" in line)
    except OSError:
        return "debian"
    ids = {fields.get("ID", "").strip('"')} | set(fields.get("ID_LIKE", "").strip('"').split())
    return "ubuntu" if "ubuntu" in ids else "debian"


def kernel_has_datapath() -> bool:
    """ipip and ESP with AES-GCM in a throwaway namespace (as `iiptran kernel` asks, with `ip` only)."""
    if shutil.which("ip") is None:
        return False
    def ip(*argv: str) -> bool:
        return subprocess.run(["ip", *argv], capture_output=True).returncode == 0
    if not ip("netns", "add", PROBE_NS):
        return False
    try:
        return (ip("-n", PROBE_NS, "link", "add", "p0", "type", "ipip", "local", "192.0.2.1", "remote", "192.0.2.2")
                and ip("-n", PROBE_NS, "xfrm", "state", "add", "src", "192.0.2.1", "dst", "192.0.2.2", "proto", "esp",
                       "spi", "0x1000", "mode", "transport", "aead", "rfc4106(gcm(aes))", "0x" + "11" * 20, "128"))
    finally:
        ip("netns", "delete", PROBE_NS)


def needed(target: str, native: bool, distro: str, docker_installed: bool = False,
           docker: bool = False) -> dict[str, str]:
    """package -> why, for `target` on a machine of this kind."""
    if target not in TARGET_NEEDS:
        raise ValueError(f"packages: unknown make target '{target}' (known: {', '.join(TARGET_NEEDS)})")
    found = {name: "the lab's nodes and probes" for name in CORE}
    found.update({name: "libreswan, the second IKE daemon" for name in IKE})
    found.update({name: "the report's topology drawing" for name in REPORT})
    if not native:
        found.update({name: "the QEMU guest this kernel needs (no ipip/esp4)" for name in GUEST})
    if "browser" in TARGET_NEEDS[target]:
        found.update({name: "the report's browser test" for name in BROWSER[distro]})
    if "iperf" in TARGET_NEEDS[target]:
        found.update({name: "make bench's throughput per datapath mode" for name in BENCH})
    if docker or "docker" in TARGET_NEEDS[target]:
        found.update({name: "the Docker backend" for name in DOCKER if not (name == "docker.io" and docker_installed)})
    return found


def browser_note(distro: str) -> str:
    if distro == "ubuntu" and not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")):
        return ("packages: Ubuntu ships Chromium as a snap; the report's browser test needs one of chromium, "
                "chromium-browser or google-chrome on PATH (`snap install chromium`)")
    return ""


def main() -> int:
    parser = argparse.ArgumentParser(prog="python3 -m testbed.packages", description=__doc__.splitlines()[0])
    parser.add_argument("target")
    parser.add_argument("--docker", action="store_true", help="the target runs on the Docker backend (BACKEND=docker)")
    parser.add_argument("--explain", action="store_true", help="say why each package is needed")
    args = parser.parse_args()
    distro = distribution()
    if args.target not in TARGET_NEEDS:
        print(f"packages: unknown make target '{args.target}' (known: {', '.join(TARGET_NEEDS)})", file=sys.stderr)
        return 2
    found = needed(args.target, kernel_has_datapath(), distro, docker_installed=shutil.which("dockerd") is not None,
                   docker=args.docker)
    if args.explain:
        for name, why in found.items():
            print(f"{name}: {why}")
    else:
        print(" ".join(found))
    note = browser_note(distro) if "browser" in TARGET_NEEDS[args.target] else ""
    if note:
        print(note, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
