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


def _config_fault(name: str, what: str, **wrong) -> Fault:
    """A fault that is only a setting the daemons are given, the same on every link."""
    def apply(lab) -> str:
        _misconfigure(lab, **wrong)
        return what
    return Fault(name, apply, phase="config", keying=Ikev2Keying.name, live=False)


def wrong_psk(lab) -> str:
    _, node = last_link(lab)
    _misconfigure(lab, auth="psk", wrong_psk=node)
    return f"pre-shared keys; {node} holds a different key for each of its links"


def untrusted_cert(lab) -> str:
    _, node = last_link(lab)
    _misconfigure(lab, untrusted=node)
    return f"{node}'s certificate is issued by a CA its peers do not trust"


FAULTS = [
    _config_fault("ike-fail-open", "no block policies under the IKE links: a link without a CHILD_SA carries IPIP "
                  "in clear", no_shunts=True),
    _config_fault("ike-child-tunnel-mode", "every CHILD_SA negotiated in tunnel mode (traffic selectors unchanged)",
                  child_mode="tunnel"),
    _config_fault("ike-wide-selectors", "every CHILD_SA's traffic selectors cover all protocols between the two base "
                  "addresses", wide_selectors=True),
    Fault("ike-wrong-psk", wrong_psk, phase="config", keying=Ikev2Keying.name, live=False),
    Fault("ike-untrusted-cert", untrusted_cert, phase="config", keying=Ikev2Keying.name, live=False),
    _config_fault("ike-wide-shunts", "the fail-closed block policies cover all traffic between a link's two ends: "
                  "without a CHILD_SA the base network's own traffic between them is blocked too", wide_shunts=True),
    _config_fault("ike-modp1024", "every IKE_SA proposes (and so negotiates) the 1024-bit MODP group (RFC 8247 2.4: "
                  "SHOULD NOT)", ike_group=2),
    _config_fault("ike-child-no-rekey", "every CHILD_SA configured never to rekey (rekey_time 0), expiring after 2 h",
                  child_life=(0, 7200)),
    _config_fault("ike-no-pfs", "every CHILD_SA proposal without a Diffie-Hellman group: rekeys without PFS",
                  no_pfs=True),
    _config_fault("ike-dpd-clear", "a dead peer's SAs are cleared on both ends (dpd_action clear): after a base-path "
                  "outage longer than dead-peer detection nobody negotiates the link again", dpd_clear=True),
    _config_fault("ike-restart-bare", "a restarted IKE daemon comes back without its links (nobody loads them "
                  "again): after a crash the link is not negotiated again", restart_bare=True),
    _config_fault("ike-restart-flushed", "a killed IKE daemon's SAs are removed from its kernel before it starts "
                  "again (as a supervisor might): no stale SA is left, and IKE-RESTART's recorded deviation no longer "
                  "shows", restart_flushed=True),
    _config_fault("ike-rekey-restarts", "a CHILD_SA rekey closes the CHILD_SA and then negotiates a new one (break "
                  "before make): the link carries nothing in between", rekey_restarts=True),
]
