"""In which order, and with how much room, a pool's runs go.

Longest first, so no long run is left alone at the end while the other
places idle: what a run took last time (its report folder's results.json),
else an estimate from its lab's size, keying and backend (measured in the
guest: fig6 about 100 s, fig3 200 s, IKE-keyed half as long again, Docker
two thirds longer, a refused bring-up 48 s).

A lab that measures a failover against a deadline (BFD on its virtual
links, so FAIL-BFD runs) takes two places: beside two other labs its
daemons starve and a sub-second window reads as a second (seen: 1.18 s
with 45 of 180 lost, pings answered up to 551 ms late).
"""
from __future__ import annotations

from testbed.batch import Run, previous_seconds
from testbed.keying.ikev2 import Ikev2Keying

NEGOTIATED = {Ikev2Keying.name}          # keyings whose bring-up waits for a daemon to negotiate

REFUSED_BRINGUP_S = 48.0


def estimate(topology, refused: bool = False) -> float:
    """Seconds a run of this topology (overrides applied) is expected to take."""
    if refused:
        return REFUSED_BRINGUP_S
    seconds = 20 + 12 * len(topology.vn_nodes) + 10 * len(topology.virtual_links)
    if {topology.keying, *(link.keying for link in topology.virtual_links)} & NEGOTIATED:
        seconds *= 1.5
    if topology.backend == "docker":
        seconds *= 1.6
    return round(seconds)


def measures_failover(topology) -> bool:
    """Does FAIL-BFD run on a lab of this topology?"""
    return (topology.defaults.bfd.enabled and topology.routing != "static"
            and topology.datapath != "tunnel-policy")


def placed(run: Run, topology, refused: bool = False) -> Run:
    """The run with its expected time and weight filled in."""
    run.expected = previous_seconds(run) or estimate(topology, refused)
    run.weight = 2 if measures_failover(topology) and not refused else 1
    return run


def longest_first(runs: list[Run]) -> list[Run]:
    """Runs that take two places first, then longest first. A two-place run
    behind one-place runs starves: whenever one of three places frees, two
    are still taken, and a one-place run behind it takes the free one (seen:
    all three failover labs left to the end, run one after another with a
    place idle, seven minutes of a forty-minute pool). At the head, each
    two-place run starts as the one before it ends, beside one other lab."""
    return sorted(runs, key=lambda run: (-run.weight, -run.expected))
