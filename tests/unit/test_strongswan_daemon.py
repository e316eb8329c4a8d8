"""strongSwan as an IKE implementation: a neutral LinkConfig becomes the
vici connection the daemon is given, and vici list-sas becomes the views the
checks read (IANA names, selectors as prefix and protocol)."""
from __future__ import annotations

from dataclasses import replace

from testbed.keying.ike_daemon import LinkConfig
from testbed.keying.negotiated import TrafficSelector
from testbed.keying.strongswan_daemon import _ike_view, connection

LINK = LinkConfig(name="link-A-B", local="10.0.0.1", remote="10.0.0.2", initiator=True, mode="transport",
                  local_ts=("10.0.0.1/32",), remote_ts=("10.0.0.2/32",), protocol=4, esp="rfc4106-gcm-aes",
                  pfs_group=19, rekey_s=3600, life_s=None, replay_window=32, ike_group=19, ike_rekey_s=14400,
                  dpd_delay_s=2, dpd_clear=False, auth="psk", psk="secret")


def _child(link: LinkConfig) -> dict:
    return connection(link, None)[link.name]["children"]["ipip"]


def test_the_lab_link_selects_ipip_between_the_two_addresses_in_transport_mode():
    conn = connection(LINK, None)["link-A-B"]
    child = conn["children"]["ipip"]
    assert (child["local_ts"], child["remote_ts"], child["mode"]) == (["10.0.0.1/32[4]"], ["10.0.0.2/32[4]"],
                                                                      "transport")
    assert child["esp_proposals"] == ["aes128gcm16-ecp256"] and conn["proposals"] == ["aes128gcm16-prfsha256-ecp256"]
    assert (child["start_action"], child["dpd_action"], conn["keyingtries"]) == ("start", "restart", "0")
    assert "life_time" not in child


def test_faults_and_roles_change_only_what_they_name():
    assert _child(replace(LINK, protocol=0))["local_ts"] == ["10.0.0.1/32"]
    assert _child(replace(LINK, pfs_group=None))["esp_proposals"] == ["aes128gcm16"]
    assert _child(replace(LINK, initiator=False))["dpd_action"] == "clear"
    assert _child(replace(LINK, dpd_clear=True))["dpd_action"] == "clear"
    never = _child(replace(LINK, rekey_s=0, life_s=7200))
    assert (never["rekey_time"], never["life_time"], never["rand_time"]) == ("0s", "7200s", "0s")
    assert connection(replace(LINK, ike_group=2), None)["link-A-B"]["proposals"] == ["aes128gcm16-prfsha256-modp1024"]


def test_list_sas_reads_as_views():
    ike = _ike_view({
        "state": "ESTABLISHED", "local-host": "10.0.0.1", "remote-host": "10.0.0.2", "uniqueid": "3",
        "initiator-spi": "aa", "responder-spi": "bb", "encr-alg": "AES_GCM_16", "encr-keysize": "128",
        "prf-alg": "PRF_HMAC_SHA2_256", "dh-group": "ECP_256", "rekey-time": "14000",
        "child-sas": {"ipip-4": {"state": "INSTALLED", "mode": "TRANSPORT", "uniqueid": "4", "spi-in": "c0ffee01",
                                 "spi-out": "c0ffee02", "encr-alg": "AES_GCM_16", "encr-keysize": "128",
                                 "dh-group": "ECP_256", "rekey-time": "3500", "life-time": "3900",
                                 "local-ts": ["10.0.0.1/32[ipencap]"], "remote-ts": ["10.0.0.2/32[4]"]}}})
    assert (ike.state, ike.spis, ike.local_host, ike.dh_group, ike.encryption) == (
        "ESTABLISHED", "aa/bb", "10.0.0.1", 19, "ENCR_AES_GCM_16")
    child, = ike.children
    assert (child.spi_in, child.spi_out, child.state, child.mode) == (0xC0FFEE01, 0xC0FFEE02, "INSTALLED", "TRANSPORT")
    assert child.local_ts == (TrafficSelector("10.0.0.1/32", 4),) and child.remote_ts == (TrafficSelector("10.0.0.2/32", 4),)
