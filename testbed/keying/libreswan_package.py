"""Debian's libreswan package, unpacked into the project's cache and never
installed: it conflicts with strongSwan's packages, which the nodes run
beside it. Its shared libraries are ordinary packages (packages.py IKE).
`make deps` fetches it (`python -m testbed.keying.libreswan_package`); the
guest shares the cache and cannot write it."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from testbed.errors import EnvironmentProblem
from testbed.paths import CACHE_DIR

PACKAGE = "libreswan"
ROOT = CACHE_DIR / "libreswan"
EXEC = ROOT / "usr" / "libexec" / "ipsec"


def present() -> bool:
    return (EXEC / "pluto").exists() and (EXEC / "whack").exists()


def require_package() -> None:
    if not present():
        raise EnvironmentProblem(f"libreswan is not unpacked in {ROOT}: `make deps` fetches Debian's package "
                                 "(apt-get download libreswan) and unpacks it there")


def _run(argv: list[str], cwd: Path | None = None) -> None:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise EnvironmentProblem(f"{' '.join(argv)} failed: {done.stderr.strip()[-400:]}")


def fetch() -> Path:
    """Download and unpack the package (once)."""
    if present():
        return ROOT
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE_DIR) as tmp:
        try:
            _run(["apt-get", "download", PACKAGE], cwd=Path(tmp))
        except EnvironmentProblem:
            # Package lists never fetched, or stale (a machine whose packages were all present
            # skipped `apt-get update`): fetch them once and try again.
            _run(["apt-get", "update", "-qq"])
            _run(["apt-get", "download", PACKAGE], cwd=Path(tmp))
        debs = list(Path(tmp).glob(f"{PACKAGE}_*.deb"))
        if not debs:
            raise EnvironmentProblem(f"apt-get download {PACKAGE} produced no .deb")
        staging = Path(tmp) / "root"
        _run(["dpkg-deb", "-x", str(debs[0]), str(staging)])
        shutil.rmtree(ROOT, ignore_errors=True)
        staging.rename(ROOT)
    return ROOT


def main() -> int:
    try:
        print(f"libreswan: {fetch()}")
    except EnvironmentProblem as exc:
        print(f"libreswan: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
