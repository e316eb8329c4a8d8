"""libreswan's pluto as an IKE implementation: one pluto per VN node, run
from Debian's package unpacked into the project's cache (it conflicts with
strongSwan's packages, so it is never installed; libreswan_package.py).

Each node's pluto has its own folder under the lab's state folder: its
ipsec.conf (paths in `config setup`, every link a file under conns/), its
secrets, NSS database, control socket and log. pluto execs addconn from a
path compiled in (/usr/libexec/ipsec); in the node's own mount namespace
(the one `ip netns exec` gives it) a tmpfs over /usr/libexec holds a bind of
the package's folder there. pluto installs its IPsec policies with a
priority of its own reckoning (1622209 for a /32 pair with a protocol),
which would lose to the testbed's fail-closed block policies: each link
names one above them (a lower number wins).
"""
from __future__ import annotations

import re
import shutil
import signal
import subprocess
from pathlib import Path

from testbed.datapath.ipsec import SHUNT_PRIORITY
from testbed.errors import TestbedError
from testbed.keying import strongswan
from testbed.keying.ike_daemon import IkeDaemon, LinkConfig
from testbed.keying.libreswan_package import EXEC, require_package
from testbed.keying.libreswan_state import parse_states
from testbed.keying.pki import Credentials
from testbed.processes import kill_until_gone, stop
from testbed.runtime.base import Runtime
from testbed.runtime.netlink import pids_in_namespace
from testbed.wait import wait_for

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
POLICY_PRIORITY = SHUNT_PRIORITY - 1000
# The same retransmissions as charon's: a peer is declared dead once they are spent.
RETRANSMIT_TIMEOUT_S = round(sum(strongswan.retransmit_schedule()))
ESP = {"rfc4106-gcm-aes": "aes_gcm128-null", "cbc-aes-hmac-sha256": "aes128-sha2_256"}
GROUPS = {2: "modp1024", 14: "modp2048", 19: "dh19", 20: "dh20", 31: "dh31"}
CA_NICKNAME = "iiptran-ca"
CONF = """# Written by the testbed for one VN node's pluto.
config setup
	nssdir={folder}/nss
	secretsfile={folder}/ipsec.secrets
	ipsecdir={folder}
	dumpdir={folder}
	logfile={folder}/pluto.log
	logtime=yes
	dnssec-enable=no
	audit-log=no
	nhelpers=1

include {folder}/conns/*.conf
"""
FAILURE = re.compile(r"AUTHENTICATION_FAILED|authentication failed|NO_PROPOSAL_CHOSEN|TS_UNACCEPTABLE|"
                     r"no suitable connection|certificate .* failed|INVALID_KE_PAYLOAD|SEC_ERROR_\w+|"
                     r"certificate payload rejected|"
                     r"IKE SA authentication request rejected|rejected Child SA")


class LibreswanDaemon(IkeDaemon):
    name = "libreswan"
    FAILURE = FAILURE

    def _folder(self, node: str) -> Path:
        return self.state_dir / "ike" / f"pluto-{node}"

    def _whack(self, node: str, *argv: str, check: bool = True) -> str:
        done = subprocess.run([str(EXEC / "whack"), "--ctlsocket", str(self._folder(node) / "run" / "pluto.ctl"),
                               *argv], capture_output=True, text=True, timeout=60, check=False)
        if check and done.returncode != 0:
            raise TestbedError(f"{node}'s pluto refused whack {' '.join(argv)}: "
                               f"{(done.stdout + done.stderr).strip()[-400:]}")
        return done.stdout

    # -- the daemon -------------------------------------------------------------
    def start(self, node: str) -> None:
        require_package()
        if self.runtime.backend != "netns":
            raise TestbedError("libreswan runs on the namespace backend only (its package is not in the node image)")
        folder = self._folder(node)
        for sub in ("run", "conns", "secrets"):
            (folder / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        # A daemon starts with no links, as charon does: the keying loads them (a restarted
        # pluto would otherwise add, and start, whatever the last one was given).
        for old in [*(folder / "conns").glob("*.conf"), *(folder / "secrets").glob("*.secrets")]:
            old.unlink()
        (folder / "ipsec.conf").write_text(CONF.format(folder=folder))
        secrets = folder / "ipsec.secrets"
        secrets.write_text(f"include {folder}/secrets/*.secrets\n")
        secrets.chmod(0o600)
        if not (folder / "nss").exists():
            (folder / "nss").mkdir(mode=0o700)
            _nss(["certutil", "-N", "-d", f"sql:{folder / 'nss'}", "--empty-password"])
        for stale in ("pluto.pid", "pluto.ctl"):
            (folder / "run" / stale).unlink(missing_ok=True)
        # pluto execs /usr/libexec/ipsec/addconn: a tmpfs there, in its own mount namespace, holds the package's.
        launch = (f"mount -t tmpfs iiptran-pluto /usr/libexec && mkdir /usr/libexec/ipsec && "
                  f"mount --bind {EXEC} /usr/libexec/ipsec && exec {EXEC / 'pluto'} --config {folder / 'ipsec.conf'} "
                  f"--rundir {folder / 'run'} --nofork")
        self.runtime.spawn(node, ["sh", "-c", launch], folder / "pluto.out")
        wait_for(lambda: (folder / "run" / "pluto.ctl").exists() and self._answers(node),
                 f"{node}'s pluto to answer on its control socket", START_TIMEOUT, interval=0.2,
                 describe=lambda: self.log_tail(node))

    def _answers(self, node: str) -> bool:
        try:
            self._whack(node, "--status")
            return True
        except (TestbedError, subprocess.TimeoutExpired):
            return False

    def _pids(self, node: str) -> list[int]:
        return pids_in_namespace(self.runtime.netns(node), "pluto")

    def running(self, node: str) -> bool:
        return bool(self._pids(node))

    def kill(self, node: str, sig: int = signal.SIGTERM) -> None:
        stop(lambda: self._pids(node), f"{node}'s pluto", sig, STOP_TIMEOUT)

    @staticmethod
    def stop_lab(runtime: Runtime, state_dir: Path) -> None:
        nodes = runtime.existing_nodes()
        kill_until_gone(lambda: [pid for node in nodes for pid in pids_in_namespace(runtime.netns(node), "pluto")],
                        "the lab's plutos")
        for folder in (state_dir / "ike").glob("pluto-*"):
            shutil.rmtree(folder, ignore_errors=True)

    def log_lines(self, node: str) -> list[str]:
        found = []
        for name in ("pluto.out", "pluto.log"):
            try:
                found += (self._folder(node) / name).read_text(errors="replace").splitlines()
            except OSError:
                pass
        return found

    def log_name(self, node: str) -> str:
        return f"pluto-{node}.log"

    def dead_peer_after(self, dpd_delay_s: int) -> float:
        return dpd_delay_s + RETRANSMIT_TIMEOUT_S

    # -- links ------------------------------------------------------------------
    def load(self, node, links, credentials, trusted_ca):
        folder = self._folder(node)
        if credentials is not None:
            self._import(node, credentials, trusted_ca)
        for link in links:
            (folder / "conns" / f"{link.name}.conf").write_text(conn(link, f"node-{node}" if credentials else None))
            secret = folder / "secrets" / f"{link.name}.secrets"
            if link.auth == "psk":
                secret.write_text(f'{link.local} {link.remote} : PSK "{link.psk}"\n')
                secret.chmod(0o600)
            else:
                secret.unlink(missing_ok=True)
        self._whack(node, "--rereadsecrets")
        for link in links:
            _run([str(EXEC / "addconn"), "--ctlsocket", str(folder / "run" / "pluto.ctl"), "--config",
                  str(folder / "ipsec.conf"), link.name], f"{node}: adding link {link.name}")
            if link.initiator:
                self._whack(node, "--name", link.name, "--initiate", "--asynchronous")

    def _import(self, node: str, credentials: Credentials, trusted_ca: bytes) -> None:
        """The CA it trusts and its own key and certificate into its NSS database (once)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.serialization import pkcs12
        folder = self._folder(node)
        marker = folder / "nss" / "iiptran-imported"
        if marker.exists():
            return
        nss = f"sql:{folder / 'nss'}"
        (folder / "ca.der").write_bytes(trusted_ca)
        _nss(["certutil", "-A", "-d", nss, "-n", CA_NICKNAME, "-t", "CT,,", "-i", str(folder / "ca.der")])
        bundle = pkcs12.serialize_key_and_certificates(
            f"node-{node}".encode(), serialization.load_der_private_key(credentials.key, password=None),
            x509.load_der_x509_certificate(credentials.cert), None, serialization.NoEncryption())
        p12 = folder / "node.p12"
        p12.write_bytes(bundle)
        p12.chmod(0o600)
        _nss(["pk12util", "-i", str(p12), "-d", nss, "-W", ""])
        p12.unlink()
        marker.touch()

    def unload(self, node, name):
        self._whack(node, "--name", name, "--delete", check=False)
        (self._folder(node) / "conns" / f"{name}.conf").unlink(missing_ok=True)
        (self._folder(node) / "secrets" / f"{name}.secrets").unlink(missing_ok=True)

    def close(self, node, name):
        self._whack(node, "--name", name, "--terminate")

    def rekey_child(self, node, name, break_first=False):
        if break_first:
            self._whack(node, "--name", name, "--terminate")
            self._whack(node, "--name", name, "--initiate", "--asynchronous")
            return
        self._whack(node, "--name", name, "--rekey-ipsec", "--asynchronous")

    def rekey_ike(self, node, name):
        self._whack(node, "--name", name, "--rekey-ike", "--asynchronous")

    def sas(self, node):
        return parse_states(self._whack(node, "--showstates"), self._whack(node, "--status"))


def conn(link: LinkConfig, certificate: str | None) -> str:
    """The ipsec.conf section of one end of a link."""
    lines = [f"conn {link.name}", "\tikev2=yes", f"\ttype={link.mode}",
             f"\tleft={link.local}", f"\tleftid={link.local}", f"\tright={link.remote}", f"\trightid={link.remote}"]
    if link.local_ts != (f"{link.local}/32",) or link.remote_ts != (f"{link.remote}/32",):
        lines += [f"\tleftsubnet={','.join(link.local_ts)}", f"\trightsubnet={','.join(link.remote_ts)}"]
    if link.protocol:
        lines += [f"\tleftprotoport={link.protocol}/0", f"\trightprotoport={link.protocol}/0"]
    if link.auth == "psk":
        lines.append("\tauthby=secret")
    else:
        # The lab's keys are ECDSA; pluto signs with RSA unless told.
        lines += [f"\tleftcert={certificate}", "\tleftsendcert=always", "\tauthby=ecdsa"]
    pfs = f"-{GROUPS[link.pfs_group]}" if link.pfs_group else ""
    life = link.life_s if link.life_s is not None else int(link.rekey_s * 1.1)
    margin = max(life - link.rekey_s, 1)
    # pluto has one rekey margin for both SAs: the IKE_SA's life puts its rekey where the lab asks.
    ike_life = link.ike_rekey_s + margin if link.rekey_s else int(link.ike_rekey_s * 1.1)
    lines += [f"\tike=aes_gcm128-sha2_256-{GROUPS[link.ike_group]}", f"\tesp={ESP[link.esp]}{pfs}",
              f"\tpfs={'yes' if link.pfs_group else 'no'}", "\tesn=no", f"\treplay-window={link.replay_window}",
              f"\tikelifetime={ike_life}s", f"\tsalifetime={life}s"]
    if link.rekey_s:
        lines += [f"\trekeymargin={margin}s", "\trekeyfuzz=0%"]
    else:
        lines.append("\trekey=no")
    lines += [f"\tdpddelay={link.dpd_delay_s}s", f"\tretransmit-timeout={RETRANSMIT_TIMEOUT_S}s",
              f"\tdpdaction={'restart' if link.initiator and not link.dpd_clear else 'clear'}",
              "\tkeyingtries=%forever", "\tinitial-contact=yes", f"\tpriority={POLICY_PRIORITY}",
              "\tleftupdown=%disabled", "\trightupdown=%disabled", f"\tauto={'start' if link.initiator else 'add'}"]
    return "\n".join(lines) + "\n"


def _run(argv: list[str], what: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise TestbedError(f"{what}: {' '.join(argv[:1])} failed: {(done.stdout + done.stderr).strip()[-400:]}")
    return done.stdout


def _nss(argv: list[str]) -> None:
    if shutil.which(argv[0]) is None:
        raise TestbedError(f"libreswan's keys need NSS's {argv[0]} (Debian package libnss3-tools)")
    _run(argv, "the NSS database")
