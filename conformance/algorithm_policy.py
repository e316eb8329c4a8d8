"""ALG-POLICY's judgement: an SA's or IKE_SA's algorithms against the
requirement levels of RFC 8221 (ESP) and RFC 8247 (IKEv2), as
conformance/algorithms.yaml states them, each finding with the RFC's level
and, where the RFC gives one, its words."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from testbed import yamlfile
from testbed.keying.negotiated import IkeSaView
from testbed.probe import kernel_algorithms as names

TABLES = Path(__file__).with_name("algorithms.yaml")
MAY = "MAY"


@lru_cache(maxsize=1)
def tables() -> dict:
    return yamlfile.parse(TABLES.read_text())


def _level(table: str, name) -> tuple[str, str]:
    """(level, why): the table's level for the name (MAY if unlisted) and its section and words."""
    entry = tables()[table]
    level = entry["levels"].get(name, MAY)
    why = f"{entry['section']}: {name} is {level}" + ("" if name in entry["levels"] else " (not listed: MAY)")
    words = entry.get("words", {}).get(name)
    return level, why + (f"; {words}" if words else "")


def _judged(table: str, name, key_bits: int | None = None) -> list[str]:
    level, why = _level(table, name)
    found = [] if level in tables()["allowed"] else [why]
    keys = tables()[table].get("keys", {}).get(name)
    if keys and key_bits is not None and key_bits not in keys:
        found.append(f"{tables()[table]['section']}: {name} is {level} for {'- and '.join(map(str, keys))}-bit "
                     f"keys; a {key_bits}-bit key is at MAY")
    return found


def _esp_names(sa) -> tuple[str, str, int]:
    """A kernel SA's cipher and integrity in IANA names, and its ICV's bits."""
    encryption = names.encryption_name(sa.encryption, sa.icv_bits, sa.aead)
    integrity = "AUTH_NONE" if sa.aead else names.integrity_name(sa.integrity, sa.icv_bits)
    return encryption, integrity, sa.icv_bits if (sa.aead or sa.integrity) else 0


def esp_findings(sa) -> list[str]:
    """What is wrong with a kernel SA's algorithms (testbed.probe.xfrm.KernelSA)."""
    encryption, integrity, icv = _esp_names(sa)
    found = _judged("esp_encryption", encryption, names.cipher_key_bits(sa.encryption, sa.key_bits))
    if integrity == "AUTH_NONE" and not sa.aead:
        found.append(f"RFC 8221 6: {tables()['esp_integrity']['words']['AUTH_NONE']}")
    else:
        found += _judged("esp_integrity", integrity)
    if icv < tables()["min_icv_bits"]:
        found.append(f"an ICV of {icv} bits, under {tables()['min_icv_bits']}")
    keys = names.key_problem(sa.encryption, sa.key_bits, sa.integrity, sa.auth_key_bits)
    if keys:
        found.append(keys)
    return found


def esp_describe(sa) -> str:
    encryption, integrity, icv = _esp_names(sa)
    return f"{encryption} ({names.cipher_key_bits(sa.encryption, sa.key_bits)}-bit key) with {integrity}, ICV {icv} bits"


def ike_findings(ike: IkeSaView) -> list[str]:
    """What is wrong with an IKE_SA's negotiated algorithms."""
    found = _judged("ike_encryption", ike.encryption, ike.key_bits or None)
    if ike.integrity:
        found += _judged("ike_integrity", ike.integrity)
    elif not ike.encryption.startswith(("ENCR_AES_GCM", "ENCR_AES_CCM", "ENCR_CHACHA20")):
        found.append("RFC 8247 2.1: \"Algorithms that are not AEAD MUST be used in conjunction with one of the "
                     "integrity algorithms in Section 2.3.\"")
    found += _judged("ike_prf", ike.prf)
    found += _judged("ike_dh", ike.dh_group) if ike.dh_group is not None else ["no Diffie-Hellman group reported"]
    return found
