"""One command, two paths: run on this kernel if it has the datapath, else
in a guest booted from Debian's stock kernel. The run says which and why.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from testbed.errors import UserError
from testbed.paths import CACHE_DIR, RUN_DIR, in_guest

RUNNERS = ("auto", "native", "guest")


def decide(runner: str) -> tuple[str, str]:
    """('native'|'guest', reason)."""
    if runner not in RUNNERS:
        raise UserError(f"--runner must be one of {', '.join(RUNNERS)}")
    if in_guest():
        return "native", "inside the real-kernel guest"
    if runner == "guest":
        return "guest", "requested with --runner guest"
    from testbed.vm.features import kernel_problems
    problems = kernel_problems()
    if not problems:
        return "native", f"this kernel ({os.uname().release}) has ipip, esp4 (AES-GCM), xfrm_user and veth"
    if runner == "native":
        raise UserError("--runner native, but this kernel lacks: " + "; ".join(problems))
    return "guest", f"this kernel ({os.uname().release}) lacks: " + "; ".join(problems)


def announce(path: str, reason: str) -> None:
    print(f"iiptran: running {'natively' if path == 'native' else 'in a QEMU guest (Debian stock kernel, TCG)'}: "
          f"{reason}", file=sys.stderr, flush=True)


def run_in_guest(argv: list[str], writable: list[Path], job: str, keep: list[Path] | None = None) -> int:
    """Run `argv` (a full command line) inside a one-shot guest; return its
    exit code. `keep`: host folders the job reads (a lab file under /tmp)."""
    from testbed.vm.guest import Guest, GuestSpec
    run_dir = RUN_DIR / f"{job}-{os.getpid()}"
    for path in writable:
        path.mkdir(parents=True, exist_ok=True)
    guest = Guest(GuestSpec(run_dir=run_dir, writable=writable, keep=list(keep or [])), CACHE_DIR)
    try:
        return guest.run(argv, Path.cwd())     # stops the VM whatever happens
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
