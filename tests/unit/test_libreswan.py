"""libreswan as an IKE implementation: a neutral LinkConfig becomes the
ipsec.conf section pluto is given (the same settings as strongSwan's side),
and whack's text becomes the views the checks read."""
from __future__ import annotations

from dataclasses import replace

from testbed.datapath.ipsec import SHUNT_PRIORITY
from testbed.keying.ike_daemon import LinkConfig
from testbed.keying.libreswan import conn
from testbed.keying.libreswan_state import parse_states
from testbed.keying.negotiated import TrafficSelector

LINK = LinkConfig(name="link-A-B", local="10.0.0.1", remote="10.0.0.2", initiator=True, mode="transport",
                  local_ts=("10.0.0.1/32",), remote_ts=("10.0.0.2/32",), protocol=4, esp="rfc4106-gcm-aes",
                  pfs_group=19, rekey_s=3600, life_s=None, replay_window=32, ike_group=19, ike_rekey_s=14400,
                  dpd_delay_s=2, dpd_clear=False, auth="psk", psk="secret")


def _settings(text: str) -> dict[str, str]:
    return dict(line.strip().split("=", 1) for line in text.splitlines()[1:] if "=" in line)


def test_the_lab_link_in_libreswan_words():
    found = _settings(conn(LINK, None))
    assert (found["type"], found["leftprotoport"], found["rightprotoport"]) == ("transport", "4/0", "4/0")
    assert (found["left"], found["leftid"], found["right"], found["rightid"]) == ("10.0.0.1",) * 2 + ("10.0.0.2",) * 2
    assert (found["ike"], found["esp"], found["pfs"]) == ("aes_gcm128-sha2_256-dh19", "aes_gcm128-null-dh19", "yes")
    assert (found["authby"], found["auto"], found["dpdaction"]) == ("secret", "start", "restart")
    # charon's timing: rekey at 3600 s, expiry 10 % later; no ESN; the window charon uses
    assert (found["salifetime"], found["rekeymargin"], found["esn"], found["replay-window"]) == (
        "3960s", "360s", "no", "32")
    # one rekey margin for both SAs: the IKE_SA's life puts its rekey at the lab's 14400 s
    assert (found["ikelifetime"], found["initial-contact"]) == ("14760s", "yes")
    assert int(found["priority"]) < SHUNT_PRIORITY        # the IPsec policy wins over the fail-closed block
    assert "leftsubnet" not in found


def test_faults_and_roles_in_libreswan_words():
    assert "leftprotoport" not in _settings(conn(replace(LINK, protocol=0), None))
    assert _settings(conn(replace(LINK, pfs_group=None), None))["pfs"] == "no"
    responder = _settings(conn(replace(LINK, initiator=False), None))
    assert (responder["auto"], responder["dpdaction"]) == ("add", "clear")
    never = _settings(conn(replace(LINK, rekey_s=0, life_s=7200), None))
    assert (never["rekey"], never["salifetime"]) == ("no", "7200s")
    assert _settings(conn(replace(LINK, ike_group=2), None))["ike"] == "aes_gcm128-sha2_256-modp1024"
    certs = _settings(conn(replace(LINK, auth="certs", psk=None), "node-A"))
    assert (certs["leftcert"], certs["leftsendcert"], certs["authby"]) == ("node-A", "always", "ecdsa")
    conventional = _settings(conn(replace(LINK, mode="tunnel", protocol=0, local_ts=("192.168.1.0/24",),
                                          remote_ts=("192.168.2.0/24",)), None))
    assert (conventional["leftsubnet"], conventional["rightsubnet"]) == ("192.168.1.0/24", "192.168.2.0/24")


# As pluto 4.10 prints them (whack --status, --showstates), trimmed to the lines read.
STATUS = """000 Connection list:
000  
000 "link-A-B": 10.0.0.1/32:IPv4/0-65535===10.0.0.1...10.0.0.2===10.0.0.2/32:IPv4/0-65535; erouted; eroute owner: #2
000 "link-A-B":   policy: IKEv2+PSK+ENCRYPT+PFS+UP+IKE_FRAG_ALLOW+ESN_NO;
000 "link-A-B":   IKEv2 algorithm newest: AES_GCM_16_128-HMAC_SHA2_256-DH19
000 "link-A-B":   ESP algorithm newest: AES_GCM_16_128-NONE; pfsgroup=<Phase1>
"""


def test_whack_text_reads_as_views():
    states = ('000 #1: "link-A-B":500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA); REKEY in 13766s; '
              'REPLACE in 14397s; newest; idle;\n'
              '000 #2: "link-A-B":500 STATE_V2_ESTABLISHED_CHILD_SA (established Child SA); REKEY in 3000s; '
              'REPLACE in 3960s; newest; eroute owner; IKE SA #1; idle;\n'
              '000 #2: "link-A-B" esp.c0ffee02@10.0.0.2 esp.c0ffee01@10.0.0.1 Traffic: ESPin=84B ESPout=84B\n')
    ike, = parse_states(states, STATUS)["link-A-B"]
    assert (ike.state, ike.local_host, ike.remote_host, ike.dh_group, ike.prf, ike.integrity) == (
        "ESTABLISHED", "10.0.0.1", "10.0.0.2", 19, "PRF_HMAC_SHA2_256", "")
    child, = ike.children
    assert (child.state, child.mode, child.spi_in, child.spi_out) == ("INSTALLED", "TRANSPORT", 0xC0FFEE01, 0xC0FFEE02)
    assert (child.encryption, child.integrity, child.dh_group, child.rekey_in_s, child.life_in_s) == (
        "ENCR_AES_GCM_16", "", 19, 3000, 3960)
    assert child.local_ts == (TrafficSelector("10.0.0.1/32", 4),)
