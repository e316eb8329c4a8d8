"""One strongSwan charon per VN node, isolated like the node's FRR: its own
strongswan.conf, vici socket, pid file and log, so every node of every lab
runs its own at once.

charon keeps its pid file at the fixed path /run/charon.pid. On the
namespace backend it therefore runs in a mount namespace of its own (the
one `ip netns exec` gives it) with the node's folder under the lab's state
folder bound over /run; in a container, /run is the container's already.
Either way the node's charon sees /run/strongswan.conf, /run/charon.vici
and /run/charon.log, and this side finds them in `run_dir`.
"""
from __future__ import annotations

import shutil
import signal
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from testbed.errors import EnvironmentProblem, TestbedError
from testbed.runtime.base import Runtime
from testbed.processes import kill_until_gone, stop
from testbed.runtime.netlink import pids_in_namespace
from testbed.wait import wait_for

CHARON = "/usr/lib/ipsec/charon"
# Retransmission (charon's settings): a request goes again after
# timeout * base^n seconds, n = 0 .. tries - 1, and is given up one
# interval after the last. Short, so that an IKE negative profile fails fast.
RETRANSMIT_TRIES, RETRANSMIT_TIMEOUT, RETRANSMIT_BASE = 3, 1.0, 1.4


def retransmit_schedule() -> list[float]:
    """Seconds between a request and each resend of it, then the giving up."""
    return [RETRANSMIT_TIMEOUT * RETRANSMIT_BASE ** n for n in range(RETRANSMIT_TRIES + 1)]

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
PLUGINS = ("random nonce openssl aes sha1 sha2 hmac kdf gcm pem pkcs1 pkcs8 x509 pubkey constraints "
           "kernel-netlink socket-default vici")
CONF = """# Written by the testbed for one VN node's charon.
charon {
  load_modular = no
  load = %(plugins)s
  # IIPtran routes over its IPIP devices: no routes in table 220, no virtual IPs.
  install_routes = no
  install_virtual_ip = no
  # Fail fast when a peer does not answer (an IKE negative profile must not hang).
  retransmit_tries = %(tries)d
  retransmit_timeout = %(timeout)s
  retransmit_base = %(base)s
  filelog {
    iiptran {
      path = /run/charon.log
      time_format = %%b %%e %%T
      default = 1
      ike = 2
      knl = 2
      flush_line = yes
    }
  }
  syslog {
    identifier = charon-%(node)s
    daemon {
      default = -1
    }
  }
  plugins {
    vici {
      socket = unix:///run/charon.vici
    }
  }
}
"""


def run_dir(runtime: Runtime, lab_state: Path, node: str) -> Path:
    """Where the node's charon /run is, seen from here."""
    if runtime.backend == "netns":
        return lab_state / "ike" / node
    return runtime.host_path(node, Path("/run"))


def _argv(runtime: Runtime, folder: Path) -> list[str]:
    charon = ["env", "STRONGSWAN_CONF=/run/strongswan.conf", CHARON]
    if runtime.backend == "netns":
        # Its own /run: the bind is made in the mount namespace `ip netns exec` creates for it.
        return ["sh", "-c", f"mount --bind {folder} /run && exec {' '.join(charon)}"]
    return charon


def pids(runtime: Runtime, node: str) -> list[int]:
    return pids_in_namespace(runtime.netns(node), "charon")


def running(runtime: Runtime, node: str) -> bool:
    return bool(pids(runtime, node))


def start(runtime: Runtime, lab_state: Path, node: str) -> None:
    """Start the node's charon and wait until its vici socket answers."""
    if shutil.which(CHARON) is None and runtime.backend == "netns":
        raise EnvironmentProblem(f"IKEv2 keying needs strongSwan's charon ({CHARON}, Debian package "
                                 "strongswan-charon) and swanctl's vici plugin (strongswan-swanctl)")
    folder = run_dir(runtime, lab_state, node)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    (folder / "strongswan.conf").write_text(CONF % {"plugins": PLUGINS, "node": node, "tries": RETRANSMIT_TRIES,
                                                 "timeout": RETRANSMIT_TIMEOUT, "base": RETRANSMIT_BASE})
    for stale in ("charon.vici", "charon.pid"):
        (folder / stale).unlink(missing_ok=True)
    runtime.spawn(node, _argv(runtime, folder), folder / "charon.out")
    wait_for(lambda: _answers(folder / "charon.vici"), f"{node}'s charon to answer on its vici socket",
             START_TIMEOUT, interval=0.2, describe=lambda: log_tail(runtime, lab_state, node))


def _answers(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))
        return True
    except OSError:
        return False


@contextmanager
def session(runtime: Runtime, lab_state: Path, node: str) -> Iterator:
    """A vici session with the node's charon, closed after use."""
    import vici
    path = run_dir(runtime, lab_state, node) / "charon.vici"
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.connect(str(path))
    except OSError as exc:
        sock.close()
        raise TestbedError(f"{node}: no charon answers on {path} ({exc})") from None
    try:
        yield vici.Session(sock)
    except vici.exception.CommandException as exc:
        raise TestbedError(f"{node}'s charon refused: {exc}") from None
    finally:
        sock.close()


def log_tail(runtime: Runtime, lab_state: Path, node: str, lines: int = 6) -> str:
    for name in ("charon.log", "charon.out"):
        try:
            text = (run_dir(runtime, lab_state, node) / name).read_text(errors="replace").strip()
        except (OSError, TestbedError):
            continue
        if text:
            return " | ".join(text.splitlines()[-lines:])
    return "no log yet"


def log_lines(runtime: Runtime, lab_state: Path, node: str) -> list[str]:
    try:
        return (run_dir(runtime, lab_state, node) / "charon.log").read_text(errors="replace").splitlines()
    except (OSError, TestbedError):
        return []


def kill(runtime: Runtime, node: str, sig: int = signal.SIGTERM) -> None:
    """Signal the node's charon and wait until it is gone (killed outright after a while)."""
    stop(lambda: pids(runtime, node), f"{node}'s charon", sig, STOP_TIMEOUT)


def stop_lab(runtime: Runtime, lab_state: Path) -> None:
    """Stop every charon of a lab, knowing only its name (also after a crash):
    the processes are found by their network namespace."""
    nodes = runtime.existing_nodes()
    kill_until_gone(lambda: [pid for node in nodes for pid in pids(runtime, node)], "the lab's charons")
    shutil.rmtree(lab_state / "ike", ignore_errors=True)


# strongSwan's spellings (vici list-sas) -> IANA names (RFC 7296, RFC 8247).
_ENCRYPTION = {"3DES_CBC": "ENCR_3DES", "DES_CBC": "ENCR_DES", "NULL_AES_GMAC": "ENCR_NULL_AUTH_AES_GMAC"}
KE_GROUPS = {"MODP_768": 1, "MODP_1024": 2, "MODP_1536": 5, "MODP_2048": 14, "MODP_3072": 15, "MODP_4096": 16,
             "MODP_6144": 17, "MODP_8192": 18, "ECP_256": 19, "ECP_384": 20, "ECP_521": 21, "MODP_1024_160": 22,
             "MODP_2048_224": 23, "MODP_2048_256": 24, "ECP_192": 25, "ECP_224": 26, "ECP_224_BP": 27,
             "ECP_256_BP": 28, "ECP_384_BP": 29, "ECP_512_BP": 30, "CURVE_25519": 31, "CURVE_448": 32}


def iana_encryption(name: str) -> str:
    return _ENCRYPTION.get(name, f"ENCR_{name}") if name else ""


def iana_integrity(name: str) -> str:
    return f"AUTH_{name}" if name else ""


def ke_group(name: str) -> int | None:
    """A key exchange's IANA number; None for none (or one not known here: -1)."""
    return KE_GROUPS.get(name, -1) if name else None
