"""ESP a VN node's peer would send, built with the keys the peer's kernel
holds: for checks that need a validly protected packet the peer would
never send by itself (another endpoint's outer source, an inner TTL of 0).

The receiver's anti-replay window advances once a packet authenticates,
even if a later step drops it, so a forged packet takes a sequence number
the sender has not used yet: ahead of the last one either kernel showed by
a margin that the sender's ongoing traffic (hellos) cannot close while
the packet is built, yet within the replay window, so the sender's own
packets in between stay acceptable. `resync` then moves the sender past
the numbers the forged packets took, as both kernels show them.

Under emulation the sender's traffic (BFD every 200 ms) can still overtake
the margin before the packets leave; the receiver then drops them as
replays and they prove nothing. `send_forged` builds them just before
sending, reads the receiver's window (its bitmap, while the sender is
still short of the forged numbers: a replay counter cannot tell whose
packet it dropped) and sends again, with fresh numbers, until it shows
them taken.
"""
from __future__ import annotations

from dataclasses import dataclass

from scapy.layers.inet import IP

from testbed.errors import PreconditionFailed, WaitTimeout
from testbed.probe.esp import encrypt
from testbed.probe.inject import send_raw_ip
from testbed.probe.traffic import ping
from testbed.probe.xfrm import KernelSA
from testbed.wait import wait_for

# Sequence numbers skipped: less than the 32-packet replay window, so the
# sender's own packets in between stay acceptable, and as many as that
# allows: a busy link's sender (seen: 24 packets while the two kernels were
# read under load) must not reach the forged numbers before they are seen taken.
AHEAD = 24
ATTEMPTS = 3
TAKEN_TIMEOUT = 2.0


def current_sa(lab, sender: str, receiver: str) -> tuple[KernelSA, int]:
    """The SA sender -> receiver that both kernels hold (the one in use), and
    the next sequence number neither has seen."""
    src, dst = lab.plan.nodes[sender].base_address, lab.plan.nodes[receiver].base_address
    sending = {sa.spi: sa for sa in lab.kernel_sad(sender).between(src, dst)}
    receiving = {sa.spi: sa for sa in lab.kernel_sad(receiver).between(src, dst)}
    shared = [spi for spi in sending if spi in receiving]
    if not shared:
        raise PreconditionFailed(f"{sender} and {receiver} hold no common SA {src}->{dst}: nothing to forge with")
    spi = max(shared, key=lambda s: sending[s].oseq)
    # Ahead of the sender, not of the receiver: after an earlier forged
    # packet the receiver is already ahead, and skipping from there would
    # push the sender's own packets out of the window.
    return sending[spi], max(sending[spi].oseq + AHEAD, receiving[spi].seq + 1)


def forge(lab, sender: str, receiver: str, inner: IP | None = None, outer_src: str | None = None,
          count: int = 1, payload=None) -> tuple[list[bytes], KernelSA, int]:
    """`count` ESP packets sender -> receiver carrying IPIP + `inner` (or,
    given `payload`, that upper-layer packet itself between the two base
    addresses: another protocol than IPIP under the link's SA), with fresh
    sequence numbers (the first returned); the outer source replaced if
    `outer_src`."""
    sa, seq = current_sa(lab, sender, receiver)
    packets = []
    for i in range(count):
        carried = IP(src=sa.src, dst=sa.dst, ttl=64) / payload if payload is not None else \
            IP(src=sa.src, dst=sa.dst, proto=4, ttl=64) / inner
        esp = encrypt(sa.as_sa(), carried, seq + i)
        outer = IP(bytes(esp))
        if outer_src:
            outer.src = outer_src
            del outer.chksum
        packets.append(bytes(outer))
    return packets, sa, seq


def send_from_base(lab, receiver: str, packets: list[bytes]) -> str:
    """Send packets to the receiver's base address from its base router; return the router."""
    router = lab.plan.nodes[receiver].veths[0].peer_node
    for packet in packets:
        send_raw_ip(lab.runtime, router, packet, lab.plan.nodes[receiver].base_address)
    return router


def _taken(lab, sender: str, receiver: str, sa: KernelSA, first: int, count: int) -> bool:
    """Did the receiver's window take the forged numbers? Only while the
    sender has not used them itself: its own packet with a forged number
    would look the same (and is what the receiver drops as a replay once
    the forged one is in: a replay counter cannot tell whose packet it was)."""
    held = [s for s in lab.kernel_sad(receiver).between(sa.src, sa.dst) if s.spi == sa.spi]
    if held and held[0].replay_window == 0:
        return True                  # no window: nothing is dropped as a replay, and none to read
    sent = [s for s in lab.kernel_sad(sender).between(sa.src, sa.dst) if s.spi == sa.spi]
    return bool(held and sent) and sent[0].oseq < first and all(
        held[0].received(n) for n in range(first, first + count))


@dataclass(frozen=True)
class Forged:
    sa: KernelSA
    router: str          # the base router they were sent from
    sent: int            # copies sent in all: a try the window could not confirm is sent again


def send_forged(lab, sender: str, receiver: str, inner: IP | None = None, outer_src: str | None = None,
                count: int = 1, payload=None) -> Forged:
    """Forge `count` packets (see `forge`) and send them to the receiver from
    its base router, until the receiver's window shows it took them. A
    packet the receiver refuses after its window (another SA's source, an
    inner TTL of 0) still counts as taken: it authenticated, which is all
    this is about. A try that could not be confirmed may still have been
    taken: what the receiver did is judged against `sent`."""
    for attempt in range(1, ATTEMPTS + 1):
        packets, sa, first = forge(lab, sender, receiver, inner, outer_src=outer_src, count=count, payload=payload)
        router = send_from_base(lab, receiver, packets)
        try:
            wait_for(lambda: _taken(lab, sender, receiver, sa, first, count),
                     f"{receiver} to take the packets forged under {sender}'s SA", timeout=TAKEN_TIMEOUT)
            return Forged(sa, router, attempt * count)
        except WaitTimeout:
            continue
    raise PreconditionFailed(f"{receiver} did not take the packets forged under {sender}'s SA in {ATTEMPTS} tries: "
                             f"{sender}'s own traffic overtook the {AHEAD} sequence numbers skipped each time, or "
                             "they did not authenticate")


def _behind(lab, sender: str, receiver: str) -> tuple[int, int]:
    """How many sequence numbers the sender's outbound SA to the receiver is
    behind what the receiver has seen (its packets up to there are replays),
    and how many it has sent."""
    src, dst = lab.plan.nodes[sender].base_address, lab.plan.nodes[receiver].base_address
    # The receiver first: the sender's traffic (hellos, BFD) goes on while
    # the kernels are read, and read the other way round it would look behind.
    received = lab.kernel_sad(receiver).between(src, dst)
    sending = {sa.spi: sa for sa in lab.kernel_sad(sender).between(src, dst)}
    shared = [(sa.seq - sending[sa.spi].oseq, sending[sa.spi].oseq) for sa in received if sa.spi in sending]
    return max(shared) if shared else (0, 0)


def resync(lab, sender: str, receiver: str) -> None:
    """Move the sender's outbound sequence past the numbers forged packets
    took (those of its packets the receiver would drop as replays), as read
    from both kernels, so the next check finds the link as it was: traffic
    between the two nodes' VN-local networks, which every datapath carries
    over the link (a tunnel's own VN addresses exist only with interfaces).
    Where that traffic does not use the SA (a lab without policies, or
    without VN routes over the link), its window is nobody's concern."""
    behind, sent = _behind(lab, sender, receiver)
    for _ in range(ATTEMPTS):
        if behind <= 0:
            return
        count, before = behind + 2, sent
        ping(lab.runtime, sender, lab.plan.nodes[receiver].lan_address, count=count, interval=0.02,
             timeout=1, source=lab.plan.nodes[sender].lan_address)
        behind, sent = _behind(lab, sender, receiver)
        if sent - before < count:      # the ping did not travel under this SA: the VN does not use it
            return
    if behind > 0:
        raise PreconditionFailed(f"{sender}'s SA to {receiver} is still {behind} sequence numbers behind what "
                                 f"{receiver} has seen after forged packets: its traffic is dropped as replays")
