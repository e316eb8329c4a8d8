"""Where the project and its scratch folders are, and whether this process
runs inside the real-kernel guest. The bottom of the package: every layer
may import it, it imports nothing of the project."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
CACHE_DIR = PROJECT / ".cache"
RUN_DIR = PROJECT / ".run"
REPORTS = PROJECT / "reports"
BENCH_DIR = REPORTS / "bench"     # what `make bench` writes
# The self-test is told (by `iiptran gate`) which report of a fig6 run the
# pool has just made, so that it checks that run's artifacts.
SELFTEST_FIG6_REPORT = "IIPTRAN_SELFTEST_FIG6_REPORT"


def in_guest() -> bool:
    return os.environ.get("IIPTRAN_IN_GUEST") == "1"


def project_file(relative: str) -> str:
    """A path the project's own files name relative to its folder (e.g. a
    configuration program named in conformance/*.yaml), made absolute."""
    return str(PROJECT / relative)
