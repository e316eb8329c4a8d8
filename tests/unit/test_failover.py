"""BFD in the FRR configuration, and how a loss window is read from pings."""
from __future__ import annotations

from pathlib import Path

from testbed.failover import longest_silence
from testbed.routing.frr import bfdd_config, ospfd_config
from testbed.topology.loader import load
from testbed.topology.model import BfdParams
from testbed.topology.plan import build_plan


def test_bfd_profile_and_ospf_interfaces_only_when_asked():
    plan = build_plan(load("fig3")).nodes["A"]
    ospf = load("fig3").defaults.ospf
    with_bfd = ospfd_config(plan, ospf, Path("/x.log"), bfd=True)
    assert with_bfd.count(" ip ospf bfd\n") == len(plan.tunnels) and "ip ospf bfd profile iiptran" in with_bfd
    assert "bfd" not in ospfd_config(plan, ospf, Path("/x.log"))
    bfdd = bfdd_config(plan, BfdParams(enabled=True, interval_ms=150, multiplier=4), Path("/b.log"))
    assert "profile iiptran" in bfdd and "receive-interval 150" in bfdd and "transmit-interval 150" in bfdd
    assert "detect-multiplier 4" in bfdd


def test_fig3_runs_bfd():
    assert load("fig3").defaults.bfd.enabled and not load("fig6").defaults.bfd.enabled


PING = """PING 192.168.7.1 (192.168.7.1) from 192.168.1.1 : 56(84) bytes of data.
[1764270000.000000] 64 bytes from 192.168.7.1: icmp_seq=1 ttl=59 time=3.1 ms
[1764270000.020000] 64 bytes from 192.168.7.1: icmp_seq=2 ttl=59 time=3.0 ms
[1764270000.640000] 64 bytes from 192.168.7.1: icmp_seq=33 ttl=59 time=3.2 ms
[1764270000.660000] 64 bytes from 192.168.7.1: icmp_seq=34 ttl=59 time=3.2 ms

--- 192.168.7.1 ping statistics ---
34 packets transmitted, 4 received, 88.2353% packet loss, time 660ms
"""


def test_loss_window_is_the_longest_silence_between_replies():
    assert longest_silence(PING) == (0.6, 34, 4)
    assert longest_silence("no replies at all") == (0.0, 0, 0)


def test_a_stream_that_ends_inside_the_outage_reads_its_unanswered_tail_as_the_window():
    cut = PING.replace("[1764270000.640000] 64 bytes from 192.168.7.1: icmp_seq=33 ttl=59 time=3.2 ms\n", "")
    cut = cut.replace("[1764270000.660000] 64 bytes from 192.168.7.1: icmp_seq=34 ttl=59 time=3.2 ms\n", "")
    cut = cut.replace("34 packets transmitted, 4 received", "34 packets transmitted, 2 received")
    assert longest_silence(cut) == (0.64, 34, 2)          # 32 unanswered at 50 a second
