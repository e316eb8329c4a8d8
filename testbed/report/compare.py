"""`iiptran compare old/results.json new/results.json`: verdict changes per requirement."""
from __future__ import annotations

import json
from pathlib import Path

from tabulate import tabulate

from testbed.errors import UserError
from testbed.report.results import compare


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("requirements"), dict):
        raise UserError(f"{path}: not a results.json (no 'requirements' mapping)")
    return data


def compare_files(old: Path, new: Path, strict: bool = False) -> int:
    """Print the changes; exit code 1 if a requirement now fails that did not
    (strict: if any requirement changed verdict, e.g. between two backends)."""
    changes = compare(_read(old), _read(new))
    if not changes:
        print(f"no requirement changed verdict ({old} -> {new})")
        return 0
    print(tabulate(changes, headers=["requirement", str(old), str(new)]))
    regressions = [c for c in changes if c[2] == "failed"]
    if regressions:
        print(f"{len(regressions)} requirement(s) now fail")
    return 1 if regressions or strict else 0
