"""Typed model of a lab file: base network, VN nodes, virtual links.

Field names mirror the YAML keys so that a validation error's location is
the path a user sees in the file.
"""
from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,7}$")
AEAD_ALGORITHMS = ("rfc4106-gcm-aes",)
CIPHER_AUTH_ALGORITHMS = ("cbc-aes-hmac-sha256",)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _node_name(value: str) -> str:
    if not NAME.match(value):
        raise ValueError("node names are 1-8 letters or digits, starting with a letter")
    return value


def _network(value: str, max_prefix: int) -> str:
    net = ipaddress.IPv4Network(value, strict=True)
    if net.prefixlen > max_prefix:
        raise ValueError(f"{value} is too small: need at least /{max_prefix}")
    return str(net)


class OspfParams(Strict):
    hello: int = Field(1, ge=1, le=60, description="hello interval, seconds")
    dead: int = Field(4, ge=2, le=240, description="dead interval, seconds")
    cost: int = Field(10, ge=1, le=65535)


class BfdParams(Strict):
    """BFD on the virtual links (FRR bfdd): OSPF learns of a dead link in
    interval x multiplier instead of its dead interval."""
    enabled: bool = False
    interval_ms: int = Field(200, ge=10, le=10000, description="transmit and receive interval, milliseconds")
    multiplier: int = Field(3, ge=2, le=255, description="missed packets before the session goes down")


class IpsecParams(Strict):
    algorithm: Literal["rfc4106-gcm-aes", "cbc-aes-hmac-sha256"] = "rfc4106-gcm-aes"


# The outer TTL Linux gives what it sends when nothing sets one (ip_default_ttl):
# a tunnel configured with it cannot be told from one configured with nothing.
KERNEL_DEFAULT_TTL = 64


class TunnelParams(Strict):
    # 99: a value no kernel default produces, so the checks can tell it was configured.
    ttl: int = Field(99, ge=1, le=255, description="fixed outer TTL (RFC 2003 3.1)")


class IkeParams(Strict):
    auth: Literal["certs", "psk"] = Field("certs", description="certificates of a per-lab CA, or a pre-shared key")
    rekey_time: int = Field(3600, ge=10, le=86400, description="CHILD_SA rekey interval, seconds")
    ike_rekey_time: int = Field(14400, ge=60, le=604800, description="IKE_SA rekey interval, seconds")
    pfs: bool = Field(True, description="each CHILD_SA rekey runs its own Diffie-Hellman exchange (PFS)")


class Defaults(Strict):
    ospf: OspfParams = OspfParams()
    ipsec: IpsecParams = IpsecParams()
    tunnel: TunnelParams = TunnelParams()
    ike: IkeParams = IkeParams()
    bfd: BfdParams = BfdParams()


class BaseLink(Strict):
    ends: tuple[str, str]
    subnet: str

    @field_validator("ends")
    @classmethod
    def _ends(cls, value: tuple[str, str]) -> tuple[str, str]:
        for name in value:
            _node_name(name)
        if value[0] == value[1]:
            raise ValueError("a link needs two different ends")
        return value

    @field_validator("subnet")
    @classmethod
    def _subnet(cls, value: str) -> str:
        return _network(value, 30)


class Base(Strict):
    routers: list[str] = Field(min_length=1)
    links: list[BaseLink] = []

    @field_validator("routers")
    @classmethod
    def _routers(cls, value: list[str]) -> list[str]:
        for name in value:
            _node_name(name)
        return value


NODE_ROUTINGS = ("frr", "bird")
NodeRouting = Literal["frr", "bird"]
IKE_DAEMONS = ("strongswan", "libreswan")
IkeDaemonName = Literal["strongswan", "libreswan"]


class VnNode(Strict):
    router: str = Field(description="base router this VN node is a base host of")
    access: str = Field(description="subnet of the base link to that router")
    lan: str = Field(description="VN-local prefix behind this node (passive in OSPF)")
    detached: bool = Field(False, description="starts without its virtual links; joins later")
    routing: NodeRouting | None = Field(None, description="this node's OSPF daemon, overriding the lab's")
    ike: IkeDaemonName | None = Field(None, description="this node's IKE daemon (IKEv2-keyed links), overriding "
                                                         "the lab's")
    configure: str | None = Field(None, description="an executable that configures this node's tunnels, IPsec "
                                                    "and routing itself (path relative to the lab file)")

    @field_validator("access")
    @classmethod
    def _access(cls, value: str) -> str:
        return _network(value, 30)

    @field_validator("lan")
    @classmethod
    def _lan(cls, value: str) -> str:
        return _network(value, 32)


class VirtualLink(Strict):
    ends: tuple[str, str]
    subnet: str
    label: str | None = Field(None, description="the RFC figure's name for the link, e.g. '3'")
    cost: int | None = Field(None, ge=1, le=65535)
    ipsec: IpsecParams | None = None
    keying: Literal["manual", "ikev2"] | None = Field(None, description="overrides the lab's keying for this link")

    @field_validator("ends")
    @classmethod
    def _ends(cls, value: tuple[str, str]) -> tuple[str, str]:
        return BaseLink._ends(value)

    @field_validator("subnet")
    @classmethod
    def _subnet(cls, value: str) -> str:
        return _network(value, 30)


class Flow(Strict):
    """A named VN traffic flow the suite exercises (e.g. the RFC's X -> Y)."""
    src: str
    dst: str


DATAPATH_MODES = ("iiptran", "tunnel-policy", "tunnel-interface")
DatapathMode = Literal["iiptran", "tunnel-policy", "tunnel-interface"]
BACKENDS = ("netns", "docker")
Backend = Literal["netns", "docker"]
ROUTINGS = ("frr", "bird", "static")
Routing = Literal["frr", "bird", "static"]
KEYINGS = ("manual", "ikev2")
Keying = Literal["manual", "ikev2"]
# Lab-wide fields a command line may override, with their allowed values.
OVERRIDABLE = {"datapath": DATAPATH_MODES, "backend": BACKENDS, "routing": ROUTINGS, "keying": KEYINGS,
               "ike": IKE_DAEMONS}
# Per-node fields a command line may override (`routing.A=bird`, `ike.A=libreswan`).
NODE_OVERRIDABLE = {"routing": NODE_ROUTINGS, "ike": IKE_DAEMONS}


class Topology(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,15}$")
    description: str = ""
    datapath: DatapathMode = Field("iiptran", description="how virtual links are built (RFC 3884 3 vs 2.3, 4.1.1)")
    backend: Backend = Field("netns", description="where nodes live: network namespaces, or Docker containers")
    routing: Routing = Field("frr", description="VN routing: FRR OSPF, BIRD OSPF, or static routes over the tunnels")
    keying: Keying = Field("manual", description="who installs the SAs: the testbed (manual keys) or IKEv2")
    ike: IkeDaemonName = Field("strongswan", description="the IKE daemon of IKEv2-keyed links' ends, unless a "
                                                          "node names its own")
    configure: str | None = Field(None, description="an executable that configures every VN node's tunnels, "
                                                    "IPsec and routing itself, unless the node names its own")
    defaults: Defaults = Defaults()
    base: Base
    vn_nodes: dict[str, VnNode] = Field(min_length=2)
    virtual_links: list[VirtualLink] = Field(min_length=1)
    flows: dict[str, Flow] = {}

    @field_validator("vn_nodes")
    @classmethod
    def _vn_names(cls, value: dict[str, VnNode]) -> dict[str, VnNode]:
        for name in value:
            _node_name(name)
        return value


def node_routing(topology: Topology, node: str) -> str:
    """A VN node's routing (its own OSPF daemon, else the lab's routing)."""
    return topology.vn_nodes[node].routing or topology.routing


def node_ike(topology: Topology, node: str) -> str:
    """A VN node's IKE daemon (its own, else the lab's)."""
    return topology.vn_nodes[node].ike or topology.ike


def ike_daemons(topology: Topology) -> set[str]:
    """Every IKE daemon the lab runs: those of the nodes at either end of an IKE-keyed link."""
    return {node_ike(topology, node) for link in topology.virtual_links
            if (link.keying or topology.keying) == "ikev2" for node in link.ends}


def node_routings(topology: Topology) -> set[str]:
    """Every routing the lab's VN nodes run (one, or several in a mixed lab)."""
    return {node_routing(topology, node) for node in topology.vn_nodes}


def node_configure(topology: Topology, node: str) -> str | None:
    """The executable that configures a VN node (its own, else the lab's), as the file names it."""
    return topology.vn_nodes[node].configure or topology.configure
