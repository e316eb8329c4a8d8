"""The Docker engine a lab's containers run on.

Natively: the engine the environment names (DOCKER_HOST, else the default
socket). Inside the real-kernel guest there is none, so one is started there
from the host's Debian docker.io: data on a tmpfs (overlay2 refuses the
guest's overlay root), no iptables and no bridge (nodes get no Docker
network, only the lab's veths). It serves every lab of that guest and is
stopped when the last lab on it is torn down (or with the guest).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from testbed.errors import EnvironmentProblem, WaitTimeout
from testbed.paths import in_guest
from testbed.wait import wait_for

PRIVATE = Path("/run/iiptran-docker")
SOCKET = PRIVATE / "docker.sock"
PIDFILE = PRIVATE / "dockerd.pid"
LOG = PRIVATE / "dockerd.log"
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
ENGINE_BINARIES = ("dockerd", "containerd", "containerd-shim-runc-v2", "runc", "docker-init")
ENGINE_FLAGS = ["--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-forward=false",
                "--ip-masq=false", "--storage-driver=overlay2", "--log-level=warn"]

_client = None
_engine_process: subprocess.Popen | None = None   # when this process started it


def client():
    """A client of the engine labs use here, starting the guest's engine if needed."""
    global _client
    if _client is None:
        _client = _private_client(start=True) if in_guest() else _environment_client()
    return _client


def client_if_running():
    """A client if an engine answers now; never starts one (for `down --all`)."""
    try:
        return _private_client(start=False) if in_guest() else _environment_client()
    except EnvironmentProblem:
        return None


def _environment_client():
    import docker
    try:
        found = docker.from_env()
        found.ping()
        return found
    except docker.errors.DockerException as exc:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise EnvironmentProblem(f"the Docker backend needs a running Docker engine; none answers at {where} "
                                 f"({str(exc).splitlines()[0][:160]}). Start Docker or set DOCKER_HOST") from None


def _private_client(start: bool):
    engine = _connect()
    if engine is not None:
        return engine
    if not start:
        raise EnvironmentProblem("no engine started here")
    _start_private_engine()
    return wait_for(_connect, f"the guest's Docker engine to answer on {SOCKET} (log: {LOG})", READY_TIMEOUT,
                    interval=0.2, describe=_log_tail)


def _connect():
    """A client of the guest's engine if it answers (the client asks for the API version at once)."""
    import docker
    if not SOCKET.exists():
        return None
    try:
        return docker.DockerClient(base_url=f"unix://{SOCKET}", timeout=300)
    except docker.errors.DockerException:
        return None


def require_engine_binaries() -> None:
    """The guest runs the host's programs: check them before it boots."""
    missing = [b for b in ENGINE_BINARIES if shutil.which(b) is None]
    if missing:
        raise EnvironmentProblem(f"the Docker backend needs Debian's docker.io on the host (missing: "
                                 f"{', '.join(missing)}); `make docker-deps` installs it")


def _start_private_engine() -> None:
    require_engine_binaries()
    data = PRIVATE / "data"
    data.mkdir(parents=True, exist_ok=True)
    if not os.path.ismount(data):
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0700", "iiptran-docker", str(data)], check=True)
    argv = ["dockerd", f"--data-root={data}", f"--exec-root={PRIVATE / 'exec'}", f"--pidfile={PIDFILE}",
            f"--host=unix://{SOCKET}", *ENGINE_FLAGS]
    global _engine_process
    with LOG.open("ab") as log:
        _engine_process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                           start_new_session=True)


def private_engine_running() -> bool:
    return _pid() is not None


def stop_private_engine() -> None:
    """Stop the guest's engine (its containerd and shims go with it). Its
    data stays on the tmpfs until the guest powers off, so a later lab in
    the same guest finds the image imported already."""
    global _client, _engine_process
    pid = _pid()
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        try:
            if _engine_process is not None and _engine_process.pid == pid:
                _engine_process.wait(timeout=STOP_TIMEOUT)     # ours: reap it
            else:
                wait_for(lambda: _pid() != pid, "the guest's Docker engine to stop", STOP_TIMEOUT, interval=0.2)
        except (WaitTimeout, subprocess.TimeoutExpired):
            os.kill(pid, signal.SIGKILL)
    _client, _engine_process = None, None


def _pid() -> int | None:
    try:
        pid = int(PIDFILE.read_text())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None


def _log_tail() -> str:
    try:
        return " | ".join(LOG.read_text(errors="replace").strip().splitlines()[-3:])
    except FileNotFoundError:
        return "no log yet"


def describe(engine) -> str:
    version = engine.version()
    where = "started in the guest" if in_guest() else "from the environment"
    return f"Docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')}, {where})"
