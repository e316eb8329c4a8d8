"""Build the guest's minimal initramfs: static busybox, the few modules needed
to mount the host's filesystem over 9p, and an init that switch_roots into it.

switch_root (not chroot) matters: after it the kernel's module autoloader
finds the host's /sbin/modprobe, which AEAD algorithms and ipip rely on.
"""
from __future__ import annotations

import hashlib
import io
import shutil
import stat
from pathlib import Path

from testbed.errors import EnvironmentProblem
from testbed.vm.kernel_cache import GuestKernel

# Drivers for the shared filesystem and the control port; everything the
# datapath needs later is autoloaded from the host's modprobe.
BOOT_MODULES = ["virtio_pci", "9pnet_virtio", "9p", "overlay", "virtio_console"]
BUSYBOX_CANDIDATES = ["/bin/busybox", "/usr/bin/busybox"]
INIT_SCRIPT = Path(__file__).with_name("initramfs_init.sh")


def module_load_order(kernel: GuestKernel, wanted: list[str]) -> list[str]:
    """Module paths (relative to the modules dir) in dependency order."""
    deps: dict[str, list[str]] = {}
    for line in (kernel.modules / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
    by_name = {Path(p).name.split(".ko")[0].replace("-", "_"): p for p in deps}
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps[path]:
            visit(dep)
        order.append(path)

    builtin = (kernel.modules / "modules.builtin").read_text()
    for name in wanted:
        if name in by_name:
            visit(by_name[name])
        elif f"/{name}.ko" not in builtin.replace("-", "_"):
            raise EnvironmentProblem(f"guest kernel {kernel.release} has no module {name}")
    return order


def _cpio_entry(out: io.BytesIO, name: str, mode: int, data: bytes = b"", ino: int = 0) -> None:
    encoded = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0]
    out.write(b"070701" + "".join(f"{f:08x}" for f in fields).encode() + encoded)
    out.write(b"\0" * (-(110 + len(encoded)) % 4))
    out.write(data)
    out.write(b"\0" * (-len(data) % 4))


def find_busybox() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        if Path(candidate).exists():
            return Path(candidate)
    found = shutil.which("busybox")
    if not found:
        raise EnvironmentProblem("busybox is not installed (Debian package busybox-static)")
    return Path(found)


def build_initramfs(kernel: GuestKernel, cache_dir: Path) -> Path:
    """Write (once per content) and return the initramfs image path."""
    busybox = find_busybox().read_bytes()
    init = INIT_SCRIPT.read_bytes()
    modules = module_load_order(kernel, BOOT_MODULES)
    digest = hashlib.sha256(busybox + init + kernel.release.encode() + "\n".join(modules).encode())
    target = cache_dir / f"initramfs-{digest.hexdigest()[:16]}.cpio"
    if target.exists():
        return target
    out = io.BytesIO()
    ino = 1
    for directory in ["bin", "dev", "proc", "sys", "lower", "upper", "newroot", "modules"]:
        _cpio_entry(out, directory, stat.S_IFDIR | 0o755, ino=ino)
        ino += 1
    _cpio_entry(out, "bin/busybox", stat.S_IFREG | 0o755, busybox, ino=ino)
    _cpio_entry(out, "init", stat.S_IFREG | 0o755, init, ino=ino + 1)
    ino += 2
    names = []
    for index, rel in enumerate(modules):
        name = f"{index:02d}-{Path(rel).name}"
        names.append(name)
        _cpio_entry(out, f"modules/{name}", stat.S_IFREG | 0o644,
                    (kernel.modules / rel).read_bytes(), ino=ino)
        ino += 1
    _cpio_entry(out, "modules/order", stat.S_IFREG | 0o644, "\n".join(names).encode() + b"\n", ino=ino)
    _cpio_entry(out, "TRAILER!!!", 0)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(out.getvalue())
    tmp.rename(target)
    return target
