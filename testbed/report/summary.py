"""The report's summary in words: lab facts with human labels, the timings
as a small table, and the figures checks measured (measurements.json)."""
from __future__ import annotations

LABELS = [  # (key in lab.json, label)
    ("topology", "topology"), ("lab", "lab name"), ("datapath", "datapath"), ("routing", "VN routing"),
    ("nodes_routing", "routing per VN node"), ("configure", "nodes configured by a hook"), ("keying", "keying"),
    ("links_keying", "keying per virtual link"), ("negative_profile", "negative profile"),
    ("kernel", "kernel"), ("in_guest", "how it ran"), ("backend", "nodes"), ("engine", "container engine"),
    ("image", "node image"), ("image_frr", "FRR the image declares"), ("frr", "FRR"),
    ("bird", "BIRD"), ("strongswan", "strongSwan"), ("iproute2", "iproute2"), ("attached_to_live_lab", "lab"),
]
TIMINGS = [("nodes_s", "nodes created"), ("datapath_s", "datapath set up"),
           ("routing_started_s", "routing daemons started"), ("up_to_converged_s", "up to converged"),
           ("join_s", "joins (pings from the new node included)"), ("engine_s", "container engine"),
           ("image_s", "node image"), ("containers_s", "containers")]


def _value(key: str, value) -> str:
    if key == "in_guest":
        return "in a QEMU guest (Debian stock kernel, software emulation)" if value else "natively, on this kernel"
    if key == "attached_to_live_lab":
        return "checked a lab that was up already" if value else "brought up for this run and torn down after"
    if key in ("links_keying", "nodes_routing", "configure"):
        return ", ".join(f"{name}: {choice}" for name, choice in sorted(value.items())) or "-"
    return str(value)


def facts(lab: dict) -> list[tuple[str, str]]:
    return [(label, _value(key, lab[key])) for key, label in LABELS if key in lab and lab[key] not in ("", None)]


def timings(lab: dict) -> list[tuple[str, str]]:
    found = lab.get("timings", {})
    return [(label, f"{found[key]:.1f} s") for key, label in TIMINGS if key in found]


def measurements(found: dict) -> list[tuple[str, str]]:
    """Figures the checks measured, one line each."""
    rows = []
    rekey = found.get("ike_rekey_loss")
    if rekey:
        phases = "; ".join(f"{p['sent'] - p['received']} of {p['sent']} across {len(p['rekeys'])} rekey(s)"
                           for p in rekey.get("phases", []))
        rows.append(("CHILD_SA rekey under traffic", f"link {rekey['link']}: {rekey['sent'] - rekey['received']} of "
                     f"{rekey['sent']} packets lost ({rekey['lost_percent']} %) at {rekey['rate_pps']} packets/s"
                     + (f" ({phases})" if phases else "")))
    restart = found.get("ike_restart_recovery")
    if restart:
        stale = sum(len(v) for v in restart.get("stale_kernel_sas", {}).values())
        rows.append(("IKE daemon killed and restarted", f"{restart['node']}, link {restart['link']}: traffic and "
                     f"routing back {restart['seconds']} s after the kill; {stale} SA(s) of the crashed daemon "
                     "left in the kernels"))
    for key, value in found.items():
        if key not in ("ike_rekey_loss", "ike_restart_recovery"):
            rows.append((key.replace("_", " "), str(value)))
    return rows
