"""ALG-POLICY's and SA-LIFETIME's judgement, on SAs as `ip -s xfrm state`
prints them and IKE_SAs as strongSwan reports them: each rule can fail."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from testbed.keying.strongswan_daemon import _ike_view
from testbed.probe.xfrm import parse_states

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "conformance"))
from algorithm_policy import esp_findings, ike_findings  # noqa: E402
from test_algorithms import _lifetime_problems  # noqa: E402

GCM16 = "aead rfc4106(gcm(aes)) 0x{k} (160 bits) 128"
LIFETIME = """	lifetime config:
	  limit: soft (INF)(bytes), hard (INF)(bytes)
	  limit: soft (INF)(packets), hard (INF)(packets)
	  expire add: soft {soft}(sec), hard {hard}(sec)
	  expire use: soft 0(sec), hard 0(sec)
"""


def _sa(crypto: str, soft: int = 3000, hard: int = 3600):
    text = ("src 10.1.1.2 dst 10.1.2.2\n\tproto esp spi 0x00001234 reqid 1 mode transport\n"
            f"\treplay-window 32 flag af-unspec\n\t{crypto}\n" + LIFETIME.format(soft=soft, hard=hard))
    return parse_states(text)[0]


def test_aes_gcm_16_with_a_128_bit_key_is_allowed():
    assert esp_findings(_sa(GCM16.format(k="00" * 20))) == []


@pytest.mark.parametrize("crypto, expected", [
    ("enc cbc(des3_ede) 0x{k24} (192 bits)\n\tauth-trunc hmac(md5) 0x{k16} (128 bits) 96", ["ENCR_3DES is SHOULD NOT",
     "AUTH_HMAC_MD5_96 is MUST NOT", "ICV of 96 bits"]),
    ("aead rfc4106(gcm(aes)) 0x{k20} (160 bits) 64", ["ENCR_AES_GCM_8 is MAY", "ICV of 64 bits"]),
    ("enc cbc(aes) 0x{k16} (128 bits)", ["AUTH_NONE MUST NOT be selected", "ICV of 0 bits"]),
    ("enc cbc(aes) 0x{k16} (128 bits)\n\tauth-trunc hmac(sha256) 0x{k32} (256 bits) 96",
     ["hmac(sha256) truncated to 96 bits", "ICV of 96 bits"]),
    ("aead rfc4106(gcm(aes)) 0x{k28} (224 bits) 128", ["192-bit key is at MAY"]),
    ("enc cbc(aes) 0x{k16} (128 bits)\n\tauth-trunc hmac(sha256) 0x{k16} (128 bits) 128",
     ["a 128-bit key for hmac(sha256)"]),
])
def test_what_rfc_8221_does_not_allow_is_named(crypto, expected):
    keys = {f"k{n}": "00" * n for n in (16, 20, 24, 28, 32)}
    found = "\n".join(esp_findings(_sa(crypto.format(**keys))))
    for words in expected:
        assert words in found, found


def _ike(**fields):
    entry = {"state": "ESTABLISHED", "encr-alg": "AES_GCM_16", "encr-keysize": "128", "prf-alg": "PRF_HMAC_SHA2_256",
             "dh-group": "ECP_256", "rekey-time": "14000", **fields}
    return _ike_view(entry)


def test_the_labs_ike_proposal_is_allowed():
    assert ike_findings(_ike()) == []


@pytest.mark.parametrize("fields, expected", [
    ({"dh-group": "MODP_1024"}, "RFC 8247 2.4: 2 is SHOULD NOT"),
    ({"dh-group": "CURVE_25519"}, "31 is MAY (not listed: MAY)"),
    ({"prf-alg": "PRF_HMAC_SHA1"}, "PRF_HMAC_SHA1 is MUST-"),
    ({"encr-alg": "AES_CBC", "encr-keysize": "128"}, "not AEAD MUST be used in conjunction"),
    ({"encr-alg": "3DES_CBC", "encr-keysize": "192", "integ-alg": "HMAC_SHA2_256_128"}, "ENCR_3DES is MAY"),
])
def test_what_rfc_8247_does_not_allow_is_named(fields, expected):
    assert any(expected in finding for finding in ike_findings(_ike(**fields))), ike_findings(_ike(**fields))


def test_an_sa_rekeyed_before_it_expires_is_fine():
    assert _lifetime_problems(_sa(GCM16.format(k="00" * 20))) == []


@pytest.mark.parametrize("soft, hard, expected", [(0, 0, "no lifetime at all"), (0, 7200, "no soft limit"),
                                                  (3600, 3600, "no soft limit"), (3000, 0, "no hard one")])
def test_an_sa_that_can_never_be_rekeyed_is_named(soft, hard, expected):
    assert any(expected in p for p in _lifetime_problems(_sa(GCM16.format(k="00" * 20), soft, hard)))
