"""Fetch Debian's stock kernel into the project's cache, never into the host's /boot.

The guest boots the ELF vmlinux carried inside the bzImage: with the xz
payload unpacked once here, the emulated CPU skips decompressing it at
every boot (the kernel is built with CONFIG_PVH, so QEMU boots the ELF
directly).
"""
from __future__ import annotations

import lzma
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from testbed.errors import EnvironmentProblem
from testbed.progress import step

META_PACKAGE = "linux-image-amd64"
XZ_MAGIC = b"\xfd7zXZ\x00"
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


def resolve_package() -> str:
    """Name of the versioned image package the meta-package points at."""
    try:
        out = _run(["apt-cache", "depends", META_PACKAGE])
    except EnvironmentProblem:
        out = ""
    if "Depends:" not in out and os.geteuid() == 0:
        _run(["apt-get", "update", "-qq"])      # a machine that never fetched package lists
        out = _run(["apt-cache", "depends", META_PACKAGE])
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "Depends:" and parts[1].startswith("linux-image-") \
                and parts[1][len("linux-image-"):][:1].isdigit():
            return parts[1]
    raise EnvironmentProblem(
        f"apt-cache knows no kernel behind {META_PACKAGE}; run 'apt-get update' first")


def extract_vmlinux(bzimage: Path, dest: Path) -> None:
    data = bzimage.read_bytes()
    start = data.find(XZ_MAGIC)
    if start < 0:
        raise EnvironmentProblem(f"{bzimage}: no xz payload found; cannot unpack the kernel")
    elf = lzma.LZMADecompressor().decompress(data[start:])
    if not elf.startswith(ELF_MAGIC):
        raise EnvironmentProblem(f"{bzimage}: xz payload is not an ELF kernel")
    tmp = dest.with_suffix(".tmp")
    tmp.write_bytes(elf)
    tmp.rename(dest)


def ensure_kernel(cache_dir: Path) -> GuestKernel:
    """Return the cached guest kernel, downloading and unpacking it on first use."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    for ready in sorted(cache_dir.glob("*/vmlinux")):
        return _describe(ready.parent)
    package = resolve_package()
    release = package[len("linux-image-"):]
    target = cache_dir / release
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp, step("guest-kernel", f"fetching {package}", cache_dir):
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
