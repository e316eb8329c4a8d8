"""The run's SAs as a Wireshark `esp_sa` table, so the pcaps open decrypted.

The table sits in `<report>/wireshark/esp_sa`, a Wireshark personal
configuration folder: point WIRESHARK_CONFIG_DIR at it. It is the only place
a report holds key material (mode 0600, never shown in the HTML).
"""
from __future__ import annotations

import os
from pathlib import Path

from testbed.sa import SecurityAssociation

# Wireshark's names for the algorithms (ESP preferences, 'esp_sa' UAT), by
# the kernel's names (and the ICV's length in octets for AES-GCM).
ENCRYPTION = {("rfc4106(gcm(aes))", 16): "AES-GCM with 16 octet ICV [RFC4106]",
              ("rfc4106(gcm(aes))", 12): "AES-GCM with 12 octet ICV [RFC4106]",
              ("rfc4106(gcm(aes))", 8): "AES-GCM with 8 octet ICV [RFC4106]",
              "cbc(aes)": "AES-CBC [RFC3602]", "cbc(des3_ede)": "TripleDES-CBC [RFC2451]", "ecb(cipher_null)": "NULL"}
AUTHENTICATION = {("", 0): "NULL", ("hmac(sha256)", 128): "HMAC-SHA-256-128 [RFC4868]",
                  ("hmac(sha384)", 192): "HMAC-SHA-384-192 [RFC4868]",
                  ("hmac(sha512)", 256): "HMAC-SHA-512-256 [RFC4868]", ("hmac(sha1)", 96): "HMAC-SHA-1-96 [RFC2404]",
                  ("hmac(md5)", 96): "HMAC-MD5-96 [RFC2403]"}


def _names(sa: SecurityAssociation) -> tuple[str, str] | None:
    encryption = ENCRYPTION.get((sa.encryption, sa.icv // 8) if sa.aead else sa.encryption)
    authentication = AUTHENTICATION.get(("", 0) if sa.aead or not sa.integrity else (sa.integrity, sa.icv))
    return (encryption, authentication) if encryption and authentication else None


def esp_sa_lines(sas: list[SecurityAssociation]) -> list[str]:
    lines = []
    for sa in sas:
        names = _names(sa)
        if names is None:
            continue          # an algorithm Wireshark is not told about here
        fields = ["IPv4", sa.src, sa.dst, f"0x{sa.spi:08x}", names[0], f"0x{sa.key}", names[1],
                  f"0x{sa.auth_key}" if sa.auth_key else ""]
        lines.append(",".join(f'"{field}"' for field in fields))
    return lines


def config_dir(report_dir: Path) -> Path:
    return report_dir / "wireshark"


def write_esp_sa(sas: list[SecurityAssociation], report_dir: Path) -> Path:
    folder = config_dir(report_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "esp_sa"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(esp_sa_lines(sas)) + "\n")
    return path


def tshark_argv(pcap: Path) -> list[str]:
    """tshark decoding ESP with the table; run with WIRESHARK_CONFIG_DIR set (see tshark_env)."""
    return ["tshark", "-n", "-o", "esp.enable_encryption_decode:TRUE", "-r", str(pcap)]


def tshark_env(report_dir: Path) -> dict[str, str]:
    return {**os.environ, "WIRESHARK_CONFIG_DIR": str(config_dir(report_dir))}
