"""Faults in what the IKE daemons are told to negotiate: configuration
faults, applied before bring-up, each handing the IKEv2 keying a typed
description of what to get wrong (IkeFaults)."""
from __future__ import annotations

from dataclasses import replace

from testbed.faults import Fault
from testbed.faults.common import last_link
from testbed.keying.ikev2 import Ikev2Keying


def _misconfigure(lab, **wrong) -> None:
    keying = lab.keying.of(Ikev2Keying.name)
    keying.misconfigure(replace(keying.faults, **wrong))


def child_tunnel_mode(lab) -> str:
    _misconfigure(lab, child_mode="tunnel")
    return "every CHILD_SA negotiated in tunnel mode (traffic selectors unchanged)"


def wide_selectors(lab) -> str:
    _misconfigure(lab, wide_selectors=True)
    return "every CHILD_SA's traffic selectors cover all protocols between the two base addresses"


def wrong_psk(lab) -> str:
    _, node = last_link(lab)
    _misconfigure(lab, auth="psk", wrong_psk=node)
    return f"pre-shared keys; {node} holds a different key for each of its links"


def untrusted_cert(lab) -> str:
    _, node = last_link(lab)
    _misconfigure(lab, untrusted=node)
    return f"{node}'s certificate is issued by a CA its peers do not trust"


def fail_open(lab) -> str:
    _misconfigure(lab, no_shunts=True)
    return "no block policies under the IKE links: a link without a CHILD_SA carries IPIP in clear"


FAULTS = [
    Fault("ike-fail-open", fail_open, phase="config", keying=Ikev2Keying.name, live=False),
    Fault("ike-child-tunnel-mode", child_tunnel_mode, phase="config", keying=Ikev2Keying.name, live=False),
    Fault("ike-wide-selectors", wide_selectors, phase="config", keying=Ikev2Keying.name, live=False),
    Fault("ike-wrong-psk", wrong_psk, phase="config", keying=Ikev2Keying.name, live=False),
    Fault("ike-untrusted-cert", untrusted_cert, phase="config", keying=Ikev2Keying.name, live=False),
]
