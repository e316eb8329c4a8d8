"""The guest's kernel is a dimension: Debian's 6.1 or 6.12 series, each
found among the packages apt knows and unpacked whatever its compression."""
import lzma
import struct

import pytest

from testbed.cli import main
from testbed.errors import EnvironmentProblem
from testbed.vm import kernel_cache
from testbed.vm.kernel_cache import DEFAULT_SERIES, extract_vmlinux, kernel_series, resolve_package

APT_NAMES = """linux-image-6.1.0-55-amd64 linux-image-6.1.0-56-amd64 linux-image-6.1.0-56-amd64-unsigned
linux-image-6.1.0-56-cloud-amd64 linux-image-6.1.0-56-amd64-dbg linux-image-6.12.107+deb12-amd64-unsigned
linux-image-6.12.113+deb12-amd64-unsigned linux-image-6.12.113+deb12-rt-amd64-unsigned
linux-image-6.12.9+deb12-amd64"""


def test_default_and_environment(monkeypatch):
    monkeypatch.delenv("IIPTRAN_KERNEL", raising=False)
    assert kernel_series() == DEFAULT_SERIES == "6.1"
    monkeypatch.setenv("IIPTRAN_KERNEL", "6.12")
    assert kernel_series() == "6.12"


def test_an_unknown_series_exits_2_before_anything_boots(monkeypatch, capsys):
    monkeypatch.setenv("IIPTRAN_KERNEL", "")       # restored after the test, whatever main() sets
    assert main(["--kernel", "5.10", "kernel"]) == 2
    assert "give one of 6.1, 6.12" in capsys.readouterr().err


@pytest.mark.parametrize("series, package", [("6.1", "linux-image-6.1.0-56-amd64"),
                                             ("6.12", "linux-image-6.12.113+deb12-amd64-unsigned")])
def test_the_newest_generic_image_of_the_series(monkeypatch, series, package):
    def apt(argv, cwd=None):
        prefix = argv[-1]
        return "\n".join(n for n in APT_NAMES.split() if n.startswith(prefix))
    monkeypatch.setattr(kernel_cache, "_run", apt)
    assert resolve_package(series) == package


def test_no_package_of_the_series_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(kernel_cache, "_run", lambda argv, cwd=None: "")
    monkeypatch.setattr(kernel_cache, "_package_lists", lambda: None)
    with pytest.raises(EnvironmentProblem, match="no Debian kernel of the 6.12 series"):
        resolve_package("6.12")


def _bzimage(payload: bytes) -> bytes:
    """A bzImage as far as the boot header goes: 4 setup sectors, then the
    payload (its uncompressed size appended) at payload_offset."""
    data = bytearray(5 * 512 + 64)
    data[0x1F1] = 4
    struct.pack_into("<II", data, 0x248, 64, len(payload) + 4)
    return bytes(data) + payload + struct.pack("<I", 12345)


def test_an_xz_payload_is_unpacked(tmp_path):
    elf = b"\x7fELF" + b"kernel" * 100
    image = tmp_path / "vmlinuz"
    image.write_bytes(_bzimage(lzma.compress(elf, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)))
    extract_vmlinux(image, tmp_path / "vmlinux")
    assert (tmp_path / "vmlinux").read_bytes() == elf


def test_an_unknown_payload_is_refused(tmp_path):
    image = tmp_path / "vmlinuz"
    image.write_bytes(_bzimage(b"\x1f\x8b\x08gzip"))
    with pytest.raises(EnvironmentProblem, match="neither an xz nor a zstd payload"):
        extract_vmlinux(image, tmp_path / "vmlinux")


def test_a_zstd_payload_is_unpacked(tmp_path):
    import subprocess
    elf = b"\x7fELF" + b"kernel" * 100
    packed = subprocess.run(["zstd", "-q", "-c"], input=elf, capture_output=True, check=True).stdout
    image = tmp_path / "vmlinuz"
    image.write_bytes(_bzimage(packed))
    extract_vmlinux(image, tmp_path / "vmlinux")
    assert (tmp_path / "vmlinux").read_bytes() == elf
