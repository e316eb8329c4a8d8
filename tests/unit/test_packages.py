"""The system packages a make target asks for fit the path the run takes."""
from __future__ import annotations

from testbed.packages import BROWSER, CORE, DOCKER, GUEST, distribution, needed


def test_the_main_job_on_a_capable_kernel_asks_for_neither_the_guest_nor_the_browser():
    names = set(needed("test-fig6", native=True, distro="debian"))
    assert set(CORE) <= names
    assert not names & set(GUEST), "a native run needs no QEMU guest"
    assert not names & set(BROWSER["debian"]), "the main job runs no browser test"
    assert not names & set(DOCKER)


def test_a_kernel_without_the_datapath_brings_the_guest_in():
    assert set(GUEST) <= set(needed("test-fig6", native=False, distro="debian"))


def test_make_test_adds_the_browser_and_docker_and_keeps_an_installed_engine():
    names = set(needed("test", native=True, distro="debian"))
    assert "chromium" in names and "mmdebstrap" in names and "docker.io" in names
    assert "docker.io" not in needed("test", native=True, distro="debian", docker_installed=True)


def test_ubuntu_is_not_asked_for_a_chromium_deb(tmp_path):
    release = tmp_path / "os-release"
    release.write_text('NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n')
    assert distribution(str(release)) == "ubuntu"
    assert "chromium" not in needed("test", native=True, distro="ubuntu")


def test_bench_asks_for_iperf3_and_nothing_else_does():
    from testbed.packages import needed
    assert "iperf3" in needed("bench", native=True, distro="debian")
    assert "iperf3" not in needed("test", native=True, distro="debian")
