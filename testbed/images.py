"""The node image of the Docker backend, from the recipe in images/node/.

One recipe (a package list), two ways to build it: `docker build` with the
Dockerfile where the engine can pull debian:bookworm-slim; otherwise a root
filesystem made by mmdebstrap from the same Debian packages, kept as a tar
under .cache/images/ and `docker import`ed with the same command and labels.
The tag carries a hash of the recipe, so a changed recipe is a new image.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

from testbed.errors import EnvironmentProblem
from testbed.paths import PROJECT, in_guest
from testbed.progress import step

RECIPE_DIR = PROJECT / "images" / "node"
REPOSITORY = "iiptran/node"
SUITE = "bookworm"
SOURCES = [f"deb http://deb.debian.org/debian {SUITE} main",
           f"deb http://deb.debian.org/debian {SUITE}-updates main",
           f"deb http://deb.debian.org/debian-security {SUITE}-security main"]
COMMAND = ["sleep", "infinity"]
LABEL_IMAGE, LABEL_RECIPE, LABEL_FRR = "org.iiptran.image", "org.iiptran.recipe", "org.iiptran.frr-version"
# Docs, man pages and translations are a third of the tree and nothing in a
# node reads them; merged /usr as in any current Debian image.
MMDEBSTRAP_OPTIONS = ["--variant=essential", "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
                      "--aptopt=APT::Install-Recommends \"false\"",
                      *[f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("man", "doc", "locale", "info")]]


def recipe_id() -> str:
    digest = hashlib.sha256()
    for path in sorted(RECIPE_DIR.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def image_tag() -> str:
    return f"{REPOSITORY}:{recipe_id()}"


def packages() -> list[str]:
    return (RECIPE_DIR / "packages").read_text().split()


def archive_path(cache_dir: Path) -> Path:
    return cache_dir / "images" / f"node-{recipe_id()}.tar"


def labels(frr_version: str) -> dict[str, str]:
    return {LABEL_IMAGE: "node", LABEL_RECIPE: recipe_id(), LABEL_FRR: frr_version}


def build_archive(cache_dir: Path) -> Path:
    """The node's root filesystem as a tar, built once per recipe (needs root or user namespaces)."""
    target = archive_path(cache_dir)
    if target.exists():
        return target
    if shutil.which("mmdebstrap") is None:
        raise EnvironmentProblem("building the node image offline needs mmdebstrap (Debian package mmdebstrap)")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial.tar")
    argv = ["mmdebstrap", "--quiet", *MMDEBSTRAP_OPTIONS, f"--include={','.join(packages())}",
            SUITE, str(partial), *SOURCES]
    started = time.monotonic()
    with step("node-image", "building the node image with mmdebstrap", cache_dir):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise EnvironmentProblem(f"mmdebstrap failed to build the node image: {done.stderr.strip()[-2000:]}")
    partial.rename(target)
    print(f"iiptran: built {target.name} from Debian packages in {time.monotonic() - started:.0f} s "
          f"({target.stat().st_size // 2**20} MB)", flush=True)
    return target


def archive_frr_version(archive: Path) -> str:
    """FRR's Debian version, read from the archive's dpkg database."""
    with tarfile.open(archive) as tar:
        for name in ("./var/lib/dpkg/status", "var/lib/dpkg/status"):
            try:
                member = tar.extractfile(name)
            except KeyError:
                continue
            if member is not None:
                return _dpkg_version(member.read().decode(errors="replace"), "frr")
    raise EnvironmentProblem(f"{archive} has no dpkg database; remove it so that it is rebuilt")


def _dpkg_version(status: str, package: str) -> str:
    for stanza in status.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " ")
        if fields.get("Package") == package and "installed" in fields.get("Status", ""):
            return fields.get("Version", "unknown")
    return "not installed"


def ensure_image(client, cache_dir: Path):
    """The node image in this engine: present already, imported from the
    archive, or built with the Dockerfile (falling back to the archive)."""
    import docker.errors
    try:
        return client.images.get(image_tag())
    except docker.errors.ImageNotFound:
        pass
    if not archive_path(cache_dir).exists():
        if in_guest():
            raise EnvironmentProblem(f"no node image archive {archive_path(cache_dir)} (the guest has no network "
                                     "to build one); run `make images` on the host")
        try:
            return _build_with_dockerfile(client)
        except docker.errors.DockerException as exc:
            print(f"iiptran: docker build of the node image failed ({str(exc).splitlines()[0][:200]}); "
                  "building it from Debian packages instead", flush=True)
    return import_archive(client, build_archive(cache_dir))


def import_archive(client, archive: Path):
    declared = labels(archive_frr_version(archive))
    changes = [f"CMD {_json_list(COMMAND)}"] + [f"LABEL {key}={value}" for key, value in declared.items()]
    started = time.monotonic()
    with archive.open("rb") as data:
        client.api.import_image_from_data(data, repository=REPOSITORY, tag=recipe_id(), changes=changes)
    image = client.images.get(image_tag())
    print(f"iiptran: imported {image_tag()} into the Docker engine in {time.monotonic() - started:.1f} s", flush=True)
    return image


def _build_with_dockerfile(client):
    tag = image_tag()
    client.images.build(path=str(RECIPE_DIR), tag=tag, pull=True, rm=True, labels=labels("unknown"))
    version = client.containers.run(tag, ["dpkg-query", "-W", "-f=${Version}", "frr"], remove=True,
                                    network_mode="none").decode().strip()
    # Same Dockerfile, so every step is cached: this only adds the label.
    client.images.build(path=str(RECIPE_DIR), tag=tag, rm=True, labels=labels(version))
    return client.images.get(tag)


def _json_list(items: list[str]) -> str:
    return "[" + ",".join(f'"{item}"' for item in items) + "]"
