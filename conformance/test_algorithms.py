"""What operators get wrong in IPsec configuration, read from the kernels
and the daemons: algorithms the RFCs do not allow (RFC 8221 for ESP, RFC
8247 for IKEv2), short ICVs and keys (ALG-POLICY); negotiated SAs that can
never be rekeyed, IKE_SAs never rekeyed, CHILD_SA rekeys without PFS
(SA-LIFETIME, RFC 7296 2.8, 1.3.2)."""
from __future__ import annotations

import pytest

from algorithm_policy import esp_describe, esp_findings, ike_findings
from ike_links import ike_keying, ike_links, installed, rekeyed
from link_sas import link_end_sas
from testbed import events
from testbed.probe.xfrm import INFINITE
from testbed.wait import wait_for

REKEY_TIMEOUT = 30.0


@pytest.mark.as_built
@pytest.mark.req("ALG-POLICY")
def test_every_sa_and_ike_sa_uses_algorithms_the_rfcs_allow(lab, kernel_ipsec):
    seen, problems = [], []
    for node, tunnel, held in link_end_sas(lab, kernel_ipsec):
        for sa in held:
            what = f"{node}: SA 0x{sa.spi:08x} {sa.src}->{sa.dst} (link {tunnel.label}): {esp_describe(sa)}"
            seen.append(what)
            problems += [f"{what}: {finding}" for finding in esp_findings(sa)]
        for ike in lab.keying.negotiated(node, tunnel) or []:
            what = f"{node}: IKE_SA of link {tunnel.label} ({ike.state}): {ike.algorithms()}"
            seen.append(what)
            problems += [f"{what}: {finding}" for finding in ike_findings(ike)]
    events.note("", "algorithms of every SA (kernel) and IKE_SA (daemon) of every virtual link", seen)
    assert seen, "no SA of any virtual link was found: nothing was checked"
    assert not problems, "\n".join(problems)


def _lifetime_problems(sa) -> list[str]:
    limits = sa.lifetime.limits
    if not limits:
        return ["no lifetime at all: it never expires, so nothing ever rekeys it"]
    found = []
    for kind, (soft, hard) in limits.items():
        if hard == INFINITE:
            found.append(f"a soft limit ({soft} {kind}) but no hard one")
        elif soft == INFINITE or soft >= hard:
            found.append(f"no soft limit before the hard one ({hard} {kind}): the daemon is never told to "
                         "rekey it before the kernel deletes it")
    return found


@pytest.mark.rebuilds_lab
@pytest.mark.req("SA-LIFETIME")
def test_negotiated_sas_expire_after_their_rekey_and_rekeys_use_pfs(lab, kernel_ipsec):
    links = ike_links(lab)
    keyed = {tunnel.label for _, tunnel in links}
    seen, problems = [], []
    for node, tunnel, held in link_end_sas(lab, kernel_ipsec):
        if tunnel.label not in keyed:
            continue
        for sa in held:
            seen.append(f"{node}: SA 0x{sa.spi:08x} {sa.src}->{sa.dst} (link {tunnel.label}): "
                        f"{sa.lifetime.describe()}")
            problems += [f"{node}: SA 0x{sa.spi:08x} of link {tunnel.label}: {p}" for p in _lifetime_problems(sa)]
        for ike in lab.keying.negotiated(node, tunnel) or []:
            seen.append(f"{node}: IKE_SA of link {tunnel.label}: rekeyed in {ike.rekey_in_s} s, "
                        f"reauthenticated in {ike.reauth_in_s} s")
            if ike.rekey_in_s is None and ike.reauth_in_s is None:
                problems.append(f"{node}: the IKE_SA of link {tunnel.label} is never rekeyed nor reauthenticated "
                                "(RFC 7296 2.8: its keys must not be used forever)")
    if lab.topology.defaults.ike.pfs:
        node, tunnel = links[0]
        child = _rekey_and_read(lab, node, tunnel)
        seen.append(f"{node}: link {tunnel.label} rekeyed on request; the new CHILD_SA's key exchange: "
                    f"{('DH group %s' % child.dh_group) if child and child.dh_group else 'none'}")
        if child is None or child.dh_group is None:
            problems.append(f"{node}: the CHILD_SA of link {tunnel.label} was rekeyed without a Diffie-Hellman "
                            "exchange: no perfect forward secrecy (RFC 7296 1.3.2), though the lab asks for it "
                            "(defaults.ike.pfs)")
    events.note("", "lifetimes of every negotiated SA (kernel) and IKE_SA (daemon); a CHILD_SA rekey's PFS", seen)
    assert not problems, "\n".join(problems)


def _rekey_and_read(lab, node, tunnel):
    """Rekey the link's CHILD_SA now; the new one as the daemon reports it."""
    old = {c.spi_in for c in installed(lab, node, tunnel)}
    ike_keying(lab).rekey(node, tunnel)
    wait_for(lambda: rekeyed(lab, node, tunnel, old), f"link {tunnel.label}'s new CHILD_SA to replace the old one "
             "on both ends", timeout=REKEY_TIMEOUT)
    new = installed(lab, node, tunnel)
    return new[0] if new else None
