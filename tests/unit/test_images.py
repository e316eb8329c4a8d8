"""The node image recipe: one package list for both builds, a tag that
follows the recipe, and the FRR version read from the built tree."""
from __future__ import annotations

import io
import shutil
import tarfile

import pytest

from testbed import images
from testbed.errors import EnvironmentProblem

STATUS = """Package: frr-pythontools
Status: deinstall ok config-files
Version: 8.0-1

Package: frr
Status: install ok installed
Priority: optional
Version: 8.4.4-1.1~deb12u2
Description: FRRouting suite
 Version: 1.0 (a continuation line, not a field)

Package: iproute2
Status: install ok installed
Version: 6.1.0-3
"""


def _copy_recipe(tmp_path, monkeypatch):
    recipe = tmp_path / "node"
    shutil.copytree(images.RECIPE_DIR, recipe)
    monkeypatch.setattr(images, "RECIPE_DIR", recipe)
    return recipe


def test_dockerfile_installs_exactly_the_package_list():
    dockerfile = (images.RECIPE_DIR / "Dockerfile").read_text()
    assert "COPY packages " in dockerfile and "xargs -a /tmp/iiptran-packages apt-get install" in dockerfile
    assert {"frr", "iproute2", "tcpdump", "iputils-ping", "traceroute"} <= set(images.packages())


def test_the_tag_follows_the_recipe(tmp_path, monkeypatch):
    recipe = _copy_recipe(tmp_path, monkeypatch)
    before = images.image_tag()
    assert before.startswith(f"{images.REPOSITORY}:") and images.archive_path(tmp_path).name.endswith(".tar")
    (recipe / "packages").write_text((recipe / "packages").read_text() + "ethtool\n")
    assert images.image_tag() != before
    assert "ethtool" in images.packages()


def test_frr_version_comes_from_the_dpkg_database_of_the_archive(tmp_path):
    archive = tmp_path / "node.tar"
    with tarfile.open(archive, "w") as tar:
        data = STATUS.encode()
        member = tarfile.TarInfo("./var/lib/dpkg/status")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    assert images.archive_frr_version(archive) == "8.4.4-1.1~deb12u2"
    assert images.labels("8.4.4-1.1~deb12u2")[images.LABEL_FRR] == "8.4.4-1.1~deb12u2"


def test_an_archive_without_dpkg_database_is_refused(tmp_path):
    archive = tmp_path / "node.tar"
    with tarfile.open(archive, "w"):
        pass
    with pytest.raises(EnvironmentProblem, match="no dpkg database"):
        images.archive_frr_version(archive)


def test_the_guest_does_not_try_to_build_without_network(tmp_path, monkeypatch):
    class NoImage:
        class images:
            @staticmethod
            def get(tag):
                import docker.errors
                raise docker.errors.ImageNotFound(tag)
    monkeypatch.setenv("IIPTRAN_IN_GUEST", "1")
    with pytest.raises(EnvironmentProblem, match="make images"):
        images.ensure_image(NoImage, tmp_path)
