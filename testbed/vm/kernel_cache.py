"""Fetch Debian's stock kernels into the project's cache (a folder per
series, side by side), never into the host's /boot.

The guest boots the ELF vmlinux carried inside the bzImage: with the
compressed payload unpacked once here, the emulated CPU skips decompressing it at
every boot (the kernel is built with CONFIG_PVH, so QEMU boots the ELF
directly).
"""
from __future__ import annotations

import lzma
import os
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from testbed.errors import EnvironmentProblem, UserError
from testbed.progress import step

# The Debian kernel series a guest can boot (`iiptran --kernel`): bookworm's
# own, and the newer one it also ships.
SERIES = ("6.1", "6.12")
DEFAULT_SERIES = "6.1"
XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ELF_MAGIC = b"\x7fELF"


@dataclass(frozen=True)
class GuestKernel:
    release: str          # e.g. 6.1.0-56-amd64
    root: Path            # extracted package tree
    vmlinux: Path         # decompressed ELF image

    @property
    def modules(self) -> Path:
        return self.root / "lib" / "modules" / self.release

    @property
    def config(self) -> Path:
        return self.root / "boot" / f"config-{self.release}"


def _run(argv: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise EnvironmentProblem(f"'{argv[0]}' is not installed (needed to fetch the guest kernel)")
    if done.returncode != 0:
        raise EnvironmentProblem(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


def kernel_series() -> str:
    """The series to boot: IIPTRAN_KERNEL (`iiptran --kernel`), else 6.1."""
    given = os.environ.get("IIPTRAN_KERNEL", "") or DEFAULT_SERIES
    if given not in SERIES:
        raise UserError(f"kernel '{given}' (--kernel or IIPTRAN_KERNEL): give one of {', '.join(SERIES)}")
    return given


def _package_lists() -> None:
    if os.geteuid() == 0:
        _run(["apt-get", "update", "-qq"])      # a machine that never fetched package lists


def _version_key(package: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", package.split("+")[0]))


def resolve_package(series: str = DEFAULT_SERIES) -> str:
    """Name of the newest image package of `series` apt knows
    (linux-image-6.1.0-56-amd64, linux-image-6.12.113+deb12-amd64-unsigned)."""
    pattern = re.compile(rf"linux-image-{re.escape(series)}\.\d+(-\d+)?(\+deb\d+)?-amd64(-unsigned)?")
    for attempt in range(2):
        try:
            names = _run(["apt-cache", "pkgnames", f"linux-image-{series}."]).split()
        except EnvironmentProblem:
            names = []
        found = sorted((n for n in names if pattern.fullmatch(n)), key=lambda n: (_version_key(n), n))
        if found:
            # Of one version, the signed image (no suffix) sorts first.
            newest = _version_key(found[-1])
            return next(n for n in found if _version_key(n) == newest)
        if attempt == 0:
            _package_lists()
    raise EnvironmentProblem(f"apt knows no Debian kernel of the {series} series (linux-image-{series}.*-amd64); "
                             "run 'apt-get update' first")


def _payload(data: bytes) -> bytes:
    """The compressed kernel inside a bzImage, as its boot header places it
    (protocol 2.08+: payload_offset and payload_length at 0x248), less the
    4-byte uncompressed size the build appends."""
    setup_sectors = data[0x1F1] or 4
    offset, length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sectors + 1) * 512 + offset
    return data[start:start + length - 4]


def extract_vmlinux(bzimage: Path, dest: Path) -> None:
    """Debian's 6.1 kernels are xz-compressed; its 6.12 ones zstd."""
    data = bzimage.read_bytes()
    payload = _payload(data)
    if payload.startswith(XZ_MAGIC):
        elf = lzma.LZMADecompressor().decompress(payload)
    elif payload.startswith(ZSTD_MAGIC):
        try:
            done = subprocess.run(["zstd", "-d", "-c"], input=payload, capture_output=True, check=False)
        except FileNotFoundError:
            raise EnvironmentProblem("'zstd' is not installed (Debian package zstd; needed to unpack "
                                     f"{bzimage.name})") from None
        if done.returncode != 0:
            raise EnvironmentProblem(f"{bzimage}: zstd could not unpack the kernel: {done.stderr.decode().strip()}")
        elf = done.stdout
    else:
        raise EnvironmentProblem(f"{bzimage}: neither an xz nor a zstd payload; cannot unpack the kernel")
    if not elf.startswith(ELF_MAGIC):
        raise EnvironmentProblem(f"{bzimage}: the payload is not an ELF kernel")
    tmp = dest.with_suffix(".tmp")
    tmp.write_bytes(elf)
    tmp.rename(dest)


def ensure_kernel(cache_dir: Path, series: str = DEFAULT_SERIES) -> GuestKernel:
    """Return the cached guest kernel of `series`, downloading and unpacking
    it on first use. Each series has its own folder, side by side."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    for ready in sorted(cache_dir.glob(f"{series}.*/vmlinux")):
        return _describe(ready.parent)
    package = resolve_package(series)
    release = package[len("linux-image-"):].removesuffix("-unsigned")
    target = cache_dir / release
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp, step(f"guest-kernel-{series}", f"fetching {package}",
                                                                 cache_dir):
        _run(["apt-get", "download", package], cwd=Path(tmp))
        debs = list(Path(tmp).glob("*.deb"))
        if not debs:
            raise EnvironmentProblem(f"apt-get download {package} produced no .deb")
        staging = Path(tmp) / "root"
        _run(["dpkg-deb", "-x", str(debs[0]), str(staging)])
        # modules.dep is written by the package's postinst; generate it here.
        _run(["depmod", "-b", str(staging), release])
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    extract_vmlinux(target / "boot" / f"vmlinuz-{release}", target / "vmlinux")
    return _describe(target)


def _describe(root: Path) -> GuestKernel:
    releases = [p.name for p in (root / "lib" / "modules").iterdir()]
    if len(releases) != 1:
        raise EnvironmentProblem(f"{root}: expected one kernel release, found {releases}")
    return GuestKernel(release=releases[0], root=root, vmlinux=root / "vmlinux")
