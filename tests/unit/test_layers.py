"""Layers stay layers: the lower packages (topology, runtime, datapath,
routing, probe) never import the higher ones (runner, CLI, lab, report,
the suite's drivers); they emit what they ran (testbed/events.py)."""
from __future__ import annotations

import ast
from pathlib import Path

TESTBED = Path(__file__).resolve().parents[2] / "testbed"
LOWER = ("topology", "runtime", "datapath", "routing", "probe")
HIGHER = ("testbed.runner", "testbed.cli", "testbed.commands", "testbed.lab", "testbed.report", "testbed.suite",
          "testbed.matrix", "testbed.profiles", "testbed.faults", "testbed.vm", "testbed.status", "testbed.bench")


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def upward_imports(packages=LOWER) -> list[str]:
    problems = []
    for package in packages:
        for path in sorted((TESTBED / package).rglob("*.py")):
            for module in sorted(imported_modules(path)):
                if any(module == higher or module.startswith(higher + ".") for higher in HIGHER):
                    problems.append(f"{path.relative_to(TESTBED.parent)} imports {module}")
    return problems


def test_lower_layers_import_no_higher_layer():
    assert upward_imports() == []


def test_an_upward_import_is_found(tmp_path, monkeypatch):
    """Control: the check sees an import of the report from a probe."""
    fake = tmp_path / "testbed" / "probe"
    fake.mkdir(parents=True)
    (fake / "leaky.py").write_text("from testbed.report.evidence import RECORDER\n")
    monkeypatch.setattr(__import__(__name__), "TESTBED", tmp_path / "testbed")
    assert upward_imports(("probe",)) == ["testbed/probe/leaky.py imports testbed.report.evidence",
                                          "testbed/probe/leaky.py imports testbed.report.evidence.RECORDER"]
