"""What several subcommands share: their options, the overrides they give
a topology, the lab they name, the node image a Docker lab needs."""
from __future__ import annotations

import argparse
import io
from pathlib import Path

from testbed.errors import UserError
from testbed.paths import CACHE_DIR, PROJECT
from testbed.topology.loader import load
from testbed.topology.model import BACKENDS, DATAPATH_MODES, IKE_DAEMONS, KEYINGS, ROUTINGS
from testbed.topology.overrides import with_overrides


def named(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="lab name (default: the topology's name, or the only lab up)")


def moded(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=DATAPATH_MODES,
                   help="datapath: iiptran (RFC 3884), or an alternative it is compared with "
                   "(default: the topology's 'datapath', else iiptran)")


def varied(p: argparse.ArgumentParser) -> None:
    """The lab-wide fields a run may override besides the datapath."""
    p.add_argument("--backend", choices=BACKENDS,
                   help="where nodes live: netns (network namespaces) or docker (containers of the "
                   "images/node image) (default: the topology's 'backend', else netns)")
    p.add_argument("--routing", choices=ROUTINGS,
                   help="VN routing: frr or bird (OSPF), or static routes over the tunnels (default: the topology's)")
    p.add_argument("--configure", metavar="EXECUTABLE",
                   help="every VN node configures its tunnels, IPsec and routing itself with this program, "
                   "given the node's plan as JSON on stdin (e.g. topologies/hooks/iiptran-ip.sh)")
    p.add_argument("--node-routing", action="append", metavar="NODE=DAEMON",
                   help="one VN node's OSPF daemon (frr or bird), e.g. A=bird for FRR-BIRD adjacencies; repeatable")
    p.add_argument("--keying", choices=KEYINGS,
                   help="who installs the SAs: manual (the testbed's keys) or ikev2 (an IKE daemon per node) "
                   "(default: the topology's 'keying', else manual)")
    p.add_argument("--ike", choices=IKE_DAEMONS,
                   help="the IKE daemon of IKEv2-keyed links: strongswan or libreswan (default: the topology's "
                   "'ike', else strongswan)")
    p.add_argument("--node-ike", action="append", metavar="NODE=DAEMON",
                   help="one VN node's IKE daemon, e.g. A=libreswan for links across implementations; repeatable")


def validate(topology: str, quiet: bool = False) -> int:
    t = load(topology)
    if not quiet:
        print(f"{topology}: valid ({len(t.base.routers)} base routers, {len(t.vn_nodes)} VN nodes, "
              f"{len(t.virtual_links)} virtual links)")
    return 0


def overrides(args: argparse.Namespace) -> dict[str, str]:
    """The lab-wide fields the command line overrides (--mode, --backend, --routing, --keying, --ike)
    and the nodes' routing and IKE daemon (--node-routing A=bird, --node-ike A=libreswan)."""
    given = {"datapath": getattr(args, "mode", None), "backend": getattr(args, "backend", None),
             "routing": getattr(args, "routing", None), "keying": getattr(args, "keying", None),
             "ike": getattr(args, "ike", None)}
    if getattr(args, "configure", None):
        given["configure"] = str(Path(args.configure).resolve())
    for option, field, example in (("node_routing", "routing", "A=bird"), ("node_ike", "ike", "A=libreswan")):
        for item in getattr(args, option, None) or []:
            node, sep, daemon = item.partition("=")
            if not sep:
                raise UserError(f"--{option.replace('_', '-')} '{item}': write NODE=DAEMON, e.g. {example}")
            given[f"{field}.{node}"] = daemon
    return {key: value for key, value in given.items() if value is not None}


def topology_as_run(args: argparse.Namespace):
    """The topology of `test`/`up` with the command line's overrides applied."""
    return with_overrides(load(args.topology), overrides(args))


def check_lab(args: argparse.Namespace) -> None:
    """A lab file that loads and takes the command line's overrides."""
    validate(args.topology, quiet=True)
    topology_as_run(args)


def on_docker(args: argparse.Namespace) -> bool:
    return topology_as_run(args).backend == "docker"


def lab_name(args: argparse.Namespace) -> str:
    from testbed.lab import Lab
    from testbed.names import resolve_lab_name
    return resolve_lab_name(args, Lab.running)


def build_images(path: str) -> int:
    """The node image where the lab's engine will find it: in this machine's
    engine when the datapath runs here, else as the archive the guest's engine imports."""
    from testbed import images
    from testbed.runtime import docker_engine
    engine = docker_engine.client_if_running() if path == "native" else None
    if engine is not None:
        image = images.ensure_image(engine, CACHE_DIR)
        print(f"iiptran: node image {images.image_tag()} ({image.short_id}) is in the Docker engine; "
              f"FRR {image.labels.get(images.LABEL_FRR, 'undeclared')}")
        return 0
    archive = images.build_archive(CACHE_DIR)
    print(f"iiptran: node image archive {archive.relative_to(PROJECT)} (FRR {images.archive_frr_version(archive)}); "
          "the Docker engine the runner starts in the guest imports it")
    return 0


def strip_dashes(cmd: list[str]) -> list[str]:
    return cmd[1:] if cmd[:1] == ["--"] else cmd


def has_real_stdout() -> bool:
    """False when stdout is captured in memory (the guest agent relays it)."""
    import sys
    try:
        sys.stdout.fileno()
        return True
    except (AttributeError, io.UnsupportedOperation):
        return False
