"""Judgements the suite makes from kernel state, on hand-made state: the
checks fail on a broken setup."""
from __future__ import annotations

import sys
from pathlib import Path

from testbed.probe.xfrm import ANY, KernelSA, Selector
from testbed.topology.plan import TunnelEnd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "conformance"))

from test_figure6_join import _addresses_in  # noqa: E402
from test_sad import selector_findings  # noqa: E402


def end(label: str, keying: str) -> TunnelEnd:
    return TunnelEnd(0, label, "t-B", "10.1.1.2", "10.1.2.2", "172.16.1.1", "172.16.1.2", 30, "B", 10,
                     "rfc4106-gcm-aes", keying)


def sa(spi: int, selector: Selector) -> KernelSA:
    return KernelSA("10.1.1.2", "10.1.2.2", spi, "esp", 1, "transport", 32, selector=selector)


IPIP = Selector("10.1.1.2/32", "10.1.2.2/32", 4)
ADDRESSES_ONLY = Selector("10.1.1.2/32", "10.1.2.2/32", ANY)
WIDE = Selector("0.0.0.0/0", "0.0.0.0/0", ANY)


def test_sad_selectors_judged_per_link():
    problems, addresses_only = selector_findings([("A", end("AB", "ikev2"), [sa(1, IPIP), sa(2, ADDRESSES_ONLY)]),
                                                  ("A", end("AC", "manual"), [sa(3, ADDRESSES_ONLY)])])
    assert len(problems) == 2 and "keyed manual" in problems[1]
    # Both select the endpoints with any protocol; only one is on an IKE link,
    # so the recorded (IKE) deviation's 'only_ike_links' fact cannot hold.
    assert [(t.keying, s.spi) for _, t, s in addresses_only] == [("ikev2", 2), ("manual", 3)]


def test_a_wider_selector_is_no_missing_protocol():
    problems, addresses_only = selector_findings([("A", end("AB", "ikev2"), [sa(1, WIDE)])])
    assert problems and not addresses_only


def test_join_matches_addresses_not_substrings():
    line = "sa 10.1.4.21>10.1.1.2 esp spi 0x00001000 sel 10.1.4.21/32 -> 10.1.1.2/32 proto 4"
    assert "10.1.4.2" not in _addresses_in(line) and {"10.1.4.21", "10.1.1.2"} <= _addresses_in(line)
