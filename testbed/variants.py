"""Several variants of a lab tested side by side (`iiptran batch`): each a
topology with lab-wide fields overridden, written `fig6:keying=ikev2` or
`fig6:backend=docker,keying=ikev2`. Each run's report folder is named as
`iiptran test` names it, so results can be compared across commands."""
from __future__ import annotations

from pathlib import Path

from tabulate import tabulate

from testbed.errors import UserError
from testbed.topology.overrides import with_overrides
from testbed.topology.loader import load
from testbed.topology.model import Topology

# A lab-wide field that differs from the model's default names the folder.
DEFAULTS = {key: Topology.model_fields[key].default for key in ("datapath", "backend", "routing", "keying", "ike")}


def folder_name(topology: Topology, profile: str | None = None) -> str:
    """fig6, fig6-ikev2, fig6-docker-ikev2, fig6-tunnel-policy, fig6-<profile> ..."""
    parts = [topology.name] + [getattr(topology, key) for key, default in DEFAULTS.items()
                               if getattr(topology, key) != default]
    if topology.configure:
        parts.append(Path(topology.configure).stem)
    for field in ("routing", "ike"):
        lab_wide = getattr(topology, field)
        for value in sorted({getattr(n, field) for n in topology.vn_nodes.values()} - {None, lab_wide}):
            parts += [value, *sorted(name for name, n in topology.vn_nodes.items() if getattr(n, field) == value)]
    return "-".join(parts + ([profile] if profile else []))


def parse(spec: str) -> tuple[str, dict[str, str]]:
    """'fig6:keying=ikev2,routing=static' -> ('fig6', {...}), checked against the topology."""
    topology, _, rest = spec.partition(":")
    overrides = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"batch: '{spec}': write overrides as field=value, got '{item}'")
        overrides[key] = value
    with_overrides(load(topology), overrides)       # bad input: a clear error, exit 2
    return topology, overrides


def planned(specs: list[str], reports: Path) -> list[tuple[str, str, dict[str, str], Path]]:
    """(spec, topology, overrides, report folder) per variant; bad input and
    two variants sharing a report folder are refused (exit 2, before any boot)."""
    found = []
    for spec in specs:
        topology, overrides = parse(spec)
        found.append((spec, topology, overrides, reports / folder_name(with_overrides(load(topology), overrides))))
    folders = [folder for *_, folder in found]
    twice = sorted({str(folder) for folder in folders if folders.count(folder) > 1})
    if twice:
        raise UserError(f"batch: two variants would share a report folder: {', '.join(twice)}")
    return found


def variant_runs(specs: list[str], reports: Path, lab_prefix: str = "var") -> list:
    from testbed.batch import Run
    from testbed.run_order import longest_first, placed
    return longest_first([placed(Run(spec, topology, f"{lab_prefix}{index}", folder, overrides),
                                 with_overrides(load(topology), overrides))
                          for index, (spec, topology, overrides, folder) in enumerate(planned(specs, reports))])


def judge_variants(runs: list) -> bool:
    from testbed.batch import print_failures
    rows = [[run.title, "passed" if run.returncode == 0 else f"exit {run.returncode}", f"{run.seconds:.0f} s",
             str(run.report)] for run in runs]
    print(tabulate(rows, headers=["variant", "verdict", "time", "report"]))
    failed = [run.title for run in runs if run.returncode != 0]
    print_failures(runs)
    print("batch: " + (f"failed: {', '.join(failed)}" if failed else "every variant passed"))
    return not failed


def run_variants(specs: list[str], reports: Path, lab_prefix: str = "var") -> int:
    from testbed.batch import run_all
    runs = run_all(variant_runs(specs, reports, lab_prefix), title="variants")
    return 0 if judge_variants(runs) else 1
