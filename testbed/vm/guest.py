"""Run a command inside a QEMU guest booted from Debian's stock kernel.

The guest sees the host's filesystem read-only (9p, with a tmpfs overlay for
scratch writes) and a few host folders writable, so the same Python, FRR and
project code run inside it. Software emulation (TCG) is used because KVM on
these hosts rejects a stock kernel. Everything the lab creates lives in the
guest kernel, so stopping the VM is a complete cleanup.
"""
from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from testbed.errors import EnvironmentProblem, UserError
from testbed.vm.initramfs import build_initramfs
from testbed.vm.kernel_cache import GuestKernel, ensure_kernel, kernel_series

ENTRY_SCRIPT = Path(__file__).with_name("guest_entry.sh")
QEMU = "qemu-system-x86_64"
PR_SET_PDEATHSIG = 1
# Variables worth carrying into the guest; the rest of the host's
# environment (terminals, sessions) means nothing there.
PASSED_ENV = ("HOME", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "TERM", "CI", "NO_COLOR",
              "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "IIPTRAN_JOBS")


DEFAULT_MEMORY_MB = 2048


def guest_memory_mb() -> int:
    """The guest's memory: IIPTRAN_GUEST_MEMORY (MB; `iiptran --guest-memory`), else 2048."""
    given = os.environ.get("IIPTRAN_GUEST_MEMORY", "")
    if not given:
        return DEFAULT_MEMORY_MB
    if not given.isdigit() or not 256 <= int(given) <= 262144:
        raise UserError(f"guest memory '{given}' (--guest-memory or IIPTRAN_GUEST_MEMORY): give MB, 256 to 262144")
    return int(given)


def _die_with_parent() -> None:
    """Child-side: the VM must not outlive the runner, even after SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class GuestSpec:
    run_dir: Path                      # writable share holding the job and its exit code
    writable: list[Path] = field(default_factory=list)
    memory_mb: int = field(default_factory=lambda: guest_memory_mb())
    cpus: int = 2
    control_socket: Path | None = None  # virtio-serial port for a long-lived guest
    console_log: Path | None = None     # console to a file instead of our stdio
    keep: list[Path] = field(default_factory=list)   # host folders the job needs


class Guest:
    def __init__(self, spec: GuestSpec, cache_dir: Path):
        if shutil.which(QEMU) is None:
            raise EnvironmentProblem(f"{QEMU} is not installed (Debian package qemu-system-x86)")
        spec.run_dir = spec.run_dir.resolve()
        spec.writable = [p.resolve() for p in spec.writable]
        self.spec = spec
        cache_dir = cache_dir.resolve()
        self.kernel: GuestKernel = ensure_kernel(cache_dir / "kernel", kernel_series())
        self.initramfs = build_initramfs(self.kernel, cache_dir)
        self.process: subprocess.Popen | None = None

    @property
    def job_file(self) -> Path:
        return self.spec.run_dir / "job.sh"

    @property
    def exit_file(self) -> Path:
        return self.spec.run_dir / "exitcode"

    def write_job(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        lines = ["#!/bin/sh", f"cd {shlex.quote(str(cwd))} || exit 2"]
        for key in PASSED_ENV:
            if key in env:
                lines.append(f"export {key}={shlex.quote(env[key])}")
        # The host PATH first (a venv's bin), then the system's.
        lines.append(f"export PATH={shlex.quote(env.get('PATH', ''))}:$PATH")
        lines.append("export TMPDIR=/tmp IIPTRAN_IN_GUEST=1")
        # The guest's console is always a terminal: say whether ours is, and how wide.
        live = env.get("IIPTRAN_LIVE", "1" if sys.stdout is not None and sys.stdout.isatty() else "0")
        lines.append(f"export IIPTRAN_LIVE={live} COLUMNS={shutil.get_terminal_size().columns}")
        lines.append(shlex.join(argv))
        lines.append(f"echo $? > {shlex.quote(str(self.exit_file))}")
        self.job_file.write_text("\n".join(lines) + "\n")

    def qemu_argv(self) -> list[str]:
        spec = self.spec
        shares = [spec.run_dir, *spec.writable]
        rw = ",".join(f"rw{i}:{p}" for i, p in enumerate(shares))
        append = " ".join([
            "console=ttyS0", "quiet", "loglevel=1", "rw",
            # A soft lockup ends the run with every CPU's stack instead of hanging it;
            # after two minutes, not twenty seconds: under emulation on a busy host
            # a vCPU can stall 23 s in an allocation and come back (seen, and the
            # panic took a whole pool of runs with it).
            "panic=-1", "softlockup_panic=1", "softlockup_all_cpu_backtrace=1", "watchdog_thresh=60",
            f"iiptran.modules={self.kernel.root / 'lib' / 'modules'}",
            f"iiptran.rw={rw}", f"iiptran.entry={ENTRY_SCRIPT}", f"iiptran.job={self.job_file}",
            f"iiptran.keep={','.join(str(p) for p in self._kept())}",
        ])
        argv = [
            QEMU, "-machine", "pc,accel=tcg", "-cpu", os.environ.get("IIPTRAN_QEMU_CPU", "max"), "-smp", str(spec.cpus),
            "-m", str(spec.memory_mb), "-nodefaults", "-no-user-config", "-no-reboot",
            "-display", "none", "-vga", "none",
            "-kernel", str(self.kernel.vmlinux), "-initrd", str(self.initramfs), "-append", append,
            "-chardev", (f"file,id=console,path={spec.console_log}" if spec.console_log
                         else "stdio,id=console,signal=off"), "-serial", "chardev:console",
            "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        ]
        for i, path in enumerate(shares):
            argv += ["-virtfs", f"local,path={path},mount_tag=rw{i},security_model=none,multidevs=remap"]
        if spec.control_socket is not None:
            argv += ["-device", "virtio-serial",
                     "-chardev", f"socket,id=ctl,path={spec.control_socket},server=on,wait=off",
                     "-device", "virtserialport,chardev=ctl,name=iiptran.ctl"]
        return argv

    def _kept(self) -> list[Path]:
        """The project, the interpreter and the caller's folder: the guest's
        scratch /tmp and /run must not hide them."""
        paths = [ENTRY_SCRIPT.parents[2], Path(sys.prefix), Path(sys.base_prefix), Path.cwd(), *self.spec.keep]
        return sorted({p.resolve() for p in paths})

    def run(self, argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> int:
        """Boot, run argv to completion with the console on our stdio, power off."""
        self.spec.run_dir.mkdir(parents=True, exist_ok=True)
        self.exit_file.unlink(missing_ok=True)
        self.write_job(argv, cwd, dict(os.environ if env is None else env))
        stdin = sys.stdin if sys.stdin is not None and sys.stdin.isatty() else subprocess.DEVNULL
        self.process = subprocess.Popen(self.qemu_argv(), stdin=stdin, preexec_fn=_die_with_parent)
        try:
            qemu_rc = self.process.wait()
        finally:
            self.stop()
        if not self.exit_file.exists():
            raise EnvironmentProblem(
                f"the guest stopped without finishing its job (qemu exit code {qemu_rc}); "
                "the console output above says why")
        return int(self.exit_file.read_text().strip() or 1)

    def start_detached(self, argv: list[str], cwd: Path, env: dict[str, str]) -> int:
        """Boot a guest that outlives this process (a lab kept up); return QEMU's pid."""
        self.spec.run_dir.mkdir(parents=True, exist_ok=True)
        self.write_job(argv, cwd, env)
        process = subprocess.Popen(self.qemu_argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        return process.pid

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        _restore_terminal()


def _restore_terminal() -> None:
    """QEMU puts a terminal stdin into raw mode; put it back if it died first."""
    if sys.stdin is not None and sys.stdin.isatty():
        subprocess.run(["stty", "sane"], stdin=sys.stdin, check=False)
