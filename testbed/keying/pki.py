"""A lab's own certificate authority and its VN nodes' certificates, made at
bring-up with strongSwan's `pki` (ECDSA P-256: quick under emulation).
Everything lives in the lab's 0700 state folder and goes with it."""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from testbed.errors import EnvironmentProblem, TestbedError
from testbed.parallel import parallel

PKI = "pki"
LIFETIME_DAYS = "2"


@dataclass(frozen=True)
class Credentials:
    key: bytes            # DER private key
    cert: bytes           # DER certificate, subjectAltName = the node's base address
    ca: bytes             # DER certificate of the CA that signed it


def _pki(*argv: str) -> bytes:
    try:
        done = subprocess.run([PKI, *argv], capture_output=True, check=False)
    except FileNotFoundError:
        raise EnvironmentProblem("IKEv2 keying needs strongSwan's pki (Debian package strongswan-pki)") from None
    if done.returncode != 0:
        raise TestbedError(f"pki {' '.join(argv[:2])} failed: {done.stderr.decode(errors='replace').strip()[-400:]}")
    return done.stdout


def _write(path: Path, data: bytes) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return path


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A CA key and self-signed certificate in `folder` (created 0700)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = _write(folder / f"{name}-ca.key", _pki("--gen", "--type", "ecdsa", "--size", "256"))
    cert = _write(folder / f"{name}-ca.crt", _pki("--self", "--ca", "--in", str(key), "--type", "ecdsa",
                                                  "--lifetime", LIFETIME_DAYS, "--dn", f"CN=iiptran {name} CA"))
    return key, cert


def issue(folder: Path, ca: tuple[Path, Path], node: str, address: str) -> Credentials:
    key = _write(folder / f"{node}.key", _pki("--gen", "--type", "ecdsa", "--size", "256"))
    cert = _pki("--issue", "--in", str(key), "--type", "priv", "--cakey", str(ca[0]), "--cacert", str(ca[1]),
                "--dn", f"CN={node}", "--san", address, "--lifetime", LIFETIME_DAYS)
    _write(folder / f"{node}.crt", cert)
    return Credentials(key.read_bytes(), cert, ca[1].read_bytes())


def lab_credentials(folder: Path, addresses: dict[str, str], ca_name: str = "lab") -> dict[str, Credentials]:
    """node -> its key and certificate for its base address, all from one CA (made once per lab)."""
    ca = (folder / f"{ca_name}-ca.key", folder / f"{ca_name}-ca.crt")
    if not ca[1].exists():
        ca = make_ca(folder, ca_name)
    have = {node for node in addresses if (folder / f"{node}.crt").exists()}
    made = parallel([lambda node=node, addr=addr: (node, issue(folder, ca, node, addr))
                     for node, addr in addresses.items() if node not in have])
    found = dict(made)
    for node in have:
        found[node] = Credentials((folder / f"{node}.key").read_bytes(), (folder / f"{node}.crt").read_bytes(),
                                  ca[1].read_bytes())
    return found
