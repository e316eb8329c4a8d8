"""A lab's own certificate authority and its VN nodes' certificates, made at
bring-up in this process with `cryptography` (ECDSA P-256). strongSwan's
`pki` did the same in ten processes per lab, about 3.5 s of CPU under
emulation. Everything lives in the lab's 0700 state folder and goes with it."""
from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LIFETIME = datetime.timedelta(days=2)
DER = serialization.Encoding.DER


@dataclass(frozen=True)
class Credentials:
    key: bytes            # DER private key (SEC 1 ECPrivateKey, as charon loads an "ecdsa" key)
    cert: bytes           # DER certificate, subjectAltName = the node's base address
    ca: bytes             # DER certificate of the CA that signed it


def _write(path: Path, data: bytes) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return path


def _key_der(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())


def _certificate(subject: str, key, issuer: str, signer, ca: bool, san: str | None = None) -> bytes:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + LIFETIME)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True)
    else:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                                        critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(san))]),
                                        critical=False)
    return builder.sign(signer, hashes.SHA256()).public_bytes(DER)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A CA key and self-signed certificate in `folder` (created 0700)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = f"iiptran {name} CA"
    return (_write(folder / f"{name}-ca.key", _key_der(key)),
            _write(folder / f"{name}-ca.crt", _certificate(subject, key, subject, key, ca=True)))


def issue(folder: Path, ca: tuple[Path, Path], node: str, address: str) -> Credentials:
    ca_key = serialization.load_der_private_key(ca[0].read_bytes(), password=None)
    ca_cert = x509.load_der_x509_certificate(ca[1].read_bytes())
    issuer = ca_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(node, key, issuer, ca_key, ca=False, san=address)
    _write(folder / f"{node}.key", _key_der(key))
    _write(folder / f"{node}.crt", cert)
    return Credentials(_key_der(key), cert, ca[1].read_bytes())


def lab_credentials(folder: Path, addresses: dict[str, str], ca_name: str = "lab") -> dict[str, Credentials]:
    """node -> its key and certificate for its base address, all from one CA (made once per lab)."""
    ca = (folder / f"{ca_name}-ca.key", folder / f"{ca_name}-ca.crt")
    if not ca[1].exists():
        ca = make_ca(folder, ca_name)
    found = {}
    for node, address in addresses.items():
        if (folder / f"{node}.crt").exists():
            found[node] = Credentials((folder / f"{node}.key").read_bytes(), (folder / f"{node}.crt").read_bytes(),
                                      ca[1].read_bytes())
        else:
            found[node] = issue(folder, ca, node, address)
    return found
