"""The kernel's ESP algorithm names in the IANA IKEv2 transform names the
RFCs use (RFC 8221, RFC 8247), with the key lengths each allows.

Linux names an AEAD by its construction (rfc4106(gcm(aes))) and keeps the
ICV length beside it; IANA names the pair (ENCR_AES_GCM_16). An HMAC's
IANA name carries its truncation: hmac(sha256) truncated to 128 bits is
AUTH_HMAC_SHA2_256_128, while the kernel's own default truncation of it,
96 bits, has no IANA name at all (RFC 8221 6 calls it "a long standing
common implementation bug").
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KernelCipher:
    iana: str                 # the IANA name; {icv} is replaced by the ICV's length in octets
    key_bits: tuple[int, ...]  # the cipher's own key lengths
    salt_bits: int = 0        # what the kernel's key carries after it (RFC 4106 salt, RFC 3686 nonce)


CIPHERS = {
    "rfc4106(gcm(aes))": KernelCipher("ENCR_AES_GCM_{icv}", (128, 192, 256), 32),
    "rfc4309(ccm(aes))": KernelCipher("ENCR_AES_CCM_{icv}", (128, 192, 256), 24),
    "rfc4543(gcm(aes))": KernelCipher("ENCR_NULL_AUTH_AES_GMAC", (128, 192, 256), 32),
    "rfc7539esp(chacha20,poly1305)": KernelCipher("ENCR_CHACHA20_POLY1305", (256,), 32),
    "rfc3686(ctr(aes))": KernelCipher("ENCR_AES_CTR", (128, 192, 256), 32),
    "cbc(aes)": KernelCipher("ENCR_AES_CBC", (128, 192, 256)),
    "cbc(des3_ede)": KernelCipher("ENCR_3DES", (192,)),
    "cbc(des)": KernelCipher("ENCR_DES", (64,)),
    "cbc(blowfish)": KernelCipher("ENCR_BLOWFISH", tuple(range(40, 449, 8))),
    "cbc(cast5)": KernelCipher("ENCR_CAST", tuple(range(40, 129, 8))),
    "cbc(camellia)": KernelCipher("ENCR_CAMELLIA_CBC", (128, 192, 256)),
    "ecb(cipher_null)": KernelCipher("ENCR_NULL", (0,)),
}

# (kernel name, ICV bits) -> IANA name; the HMAC key is as long as the hash.
INTEGRITY = {
    ("hmac(md5)", 96): "AUTH_HMAC_MD5_96", ("hmac(md5)", 128): "AUTH_HMAC_MD5_128",
    ("hmac(sha1)", 96): "AUTH_HMAC_SHA1_96", ("hmac(sha1)", 160): "AUTH_HMAC_SHA1_160",
    ("hmac(sha256)", 128): "AUTH_HMAC_SHA2_256_128", ("hmac(sha384)", 192): "AUTH_HMAC_SHA2_384_192",
    ("hmac(sha512)", 256): "AUTH_HMAC_SHA2_512_256", ("xcbc(aes)", 96): "AUTH_AES_XCBC_96",
    ("cmac(aes)", 96): "AUTH_AES_CMAC_96", ("digest_null", 0): "AUTH_NONE",
}
HMAC_KEY_BITS = {"hmac(md5)": 128, "hmac(sha1)": 160, "hmac(sha256)": 256, "hmac(sha384)": 384,
                 "hmac(sha512)": 512, "xcbc(aes)": 128, "cmac(aes)": 128}


def encryption_name(encryption: str, icv_bits: int, aead: bool) -> str:
    """The IANA name of an SA's cipher (with its ICV for an AEAD), or a description of one IANA has none for."""
    cipher = CIPHERS.get(encryption)
    if cipher is None:
        return f"{encryption} (a cipher with no IANA IKEv2 transform known here)"
    return cipher.iana.format(icv=icv_bits // 8) if aead else cipher.iana


def integrity_name(integrity: str, icv_bits: int) -> str:
    """The IANA name of an SA's integrity algorithm with its truncation; AUTH_NONE for none."""
    if not integrity:
        return "AUTH_NONE"
    return INTEGRITY.get((integrity, icv_bits),
                         f"{integrity} truncated to {icv_bits} bits (no IANA IKEv2 transform)")


def cipher_key_bits(encryption: str, key_bits: int) -> int:
    """The cipher's own key length in an SA's key as the kernel prints it (salt or nonce left out)."""
    cipher = CIPHERS.get(encryption)
    return key_bits - cipher.salt_bits if cipher else key_bits


def key_problem(encryption: str, key_bits: int, integrity: str, auth_key_bits: int) -> str:
    """Why the SA's keys are not of the algorithms' full lengths ("" if they are)."""
    cipher = CIPHERS.get(encryption)
    own = cipher_key_bits(encryption, key_bits)
    if cipher is not None and own not in cipher.key_bits:
        allowed = cipher.key_bits
        takes = "/".join(map(str, allowed)) if len(allowed) < 5 else f"{allowed[0]} to {allowed[-1]}"
        return f"a {own}-bit key for {encryption}, which takes {takes}"
    want = HMAC_KEY_BITS.get(integrity)
    if integrity and want and auth_key_bits != want:
        return f"a {auth_key_bits}-bit key for {integrity}, whose full key length is {want} bits (RFC 4868 2.1.1)"
    return ""
