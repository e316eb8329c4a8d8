"""Layers stay layers: the lower packages (topology, runtime, datapath,
routing, keying, probe) and the ground floor's modules never import the
higher ones (runner, CLI, lab, report, the suite's drivers); they emit
what they ran (testbed/events.py) and get a LabContext, not the lab."""
from __future__ import annotations

import ast
from pathlib import Path

TESTBED = Path(__file__).resolve().parents[2] / "testbed"
LOWER = ("topology", "runtime", "datapath", "routing", "keying", "probe")
# Modules every layer may import; they import no layer above them.
GROUND = ("context.py", "sa.py", "verdicts.py", "errors.py", "paths.py", "processes.py", "wait.py", "events.py",
          "parallel.py", "names.py")
HIGHER = ("testbed.runner", "testbed.cli", "testbed.commands", "testbed.lab", "testbed.lab_state", "testbed.report",
          "testbed.suite", "testbed.matrix", "testbed.profiles", "testbed.faults", "testbed.vm", "testbed.status",
          "testbed.bench", "testbed.gate", "testbed.batch", "testbed.implementations", "testbed.variants",
          "testbed.mixed_link", "testbed.reroute", "testbed.failover", "testbed.run_order")


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def upward_imports(packages=LOWER, ground=GROUND) -> list[str]:
    paths = [path for package in packages for path in sorted((TESTBED / package).rglob("*.py"))]
    paths += [TESTBED / name for name in ground if (TESTBED / name).exists()]
    return [f"{path.relative_to(TESTBED.parent)} imports {module}" for path in paths
            for module in sorted(imported_modules(path))
            if any(module == higher or module.startswith(higher + ".") for higher in HIGHER)]


def test_lower_layers_import_no_higher_layer():
    assert upward_imports() == []


def test_an_upward_import_is_found(tmp_path, monkeypatch):
    """Control: the check sees an import of the report from a probe."""
    fake = tmp_path / "testbed" / "probe"
    fake.mkdir(parents=True)
    (fake / "leaky.py").write_text("from testbed.report.evidence import Recorder\n")
    monkeypatch.setattr(__import__(__name__), "TESTBED", tmp_path / "testbed")
    assert upward_imports(("probe",), ()) == ["testbed/probe/leaky.py imports testbed.report.evidence",
                                              "testbed/probe/leaky.py imports testbed.report.evidence.Recorder"]


def test_no_lower_module_imports_the_lab(tmp_path, monkeypatch):
    """Control: a keying strategy reaching for the lab is found."""
    fake = tmp_path / "testbed" / "keying"
    fake.mkdir(parents=True)
    (fake / "greedy.py").write_text("from testbed.lab import Lab\n")
    monkeypatch.setattr(__import__(__name__), "TESTBED", tmp_path / "testbed")
    assert upward_imports(("keying",), ()) == ["testbed/keying/greedy.py imports testbed.lab",
                                               "testbed/keying/greedy.py imports testbed.lab.Lab"]


def test_the_models_keying_names_are_the_registered_strategies():
    from testbed.keying import KEYINGS
    from testbed.topology.model import KEYINGS as NAMES
    assert set(NAMES) == set(KEYINGS)
