"""The requirement catalogue and the conformance tests name each other consistently."""
from __future__ import annotations

import ast
from pathlib import Path

from testbed.requirements import CATALOGUE, catalogue, consistency_problems

CONFORMANCE = Path(__file__).resolve().parents[2] / "conformance"


def marked_tests() -> dict[str, list[str]]:
    """'file::test' -> requirement IDs named by its @pytest.mark.req."""
    found = {}
    for path in sorted(CONFORMANCE.glob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                ids = [arg.value for deco in node.decorator_list if isinstance(deco, ast.Call)
                       and ast.unparse(deco.func) == "pytest.mark.req" for arg in deco.args]
                found[f"{path.name}::{node.name}"] = ids
    return found


def test_catalogue_loads_and_covers_the_sections_the_suite_claims():
    entries = catalogue(CATALOGUE)
    sections = {s for e in entries.values() for s in e.rfc}
    for claimed in ("3884 2.3", "3884 2.4", "3884 3.1", "3884 3.2", "3884 3.3", "3884 4.2.3", "3884 4.2.3.2",
                    "3884 A.1", "3884 A.2", "4301 4.1", "2003 3.1", "2003 4", "4303 3.4.3"):
        assert claimed in sections, f"no requirement cites {claimed}"


def test_catalogue_and_tests_agree():
    assert consistency_problems(catalogue(CATALOGUE), marked_tests()) == []


def test_disagreements_are_found(tmp_path):
    broken = tmp_path / "requirements.yaml"
    extra = "- id: NEW-REQ\n  rfc: ['3884 9']\n  statement: a claim nobody checks yet\n"
    broken.write_text(CATALOGUE.read_text() + extra)
    tests = marked_tests()
    tests["test_x.py::test_orphan"] = []
    tests["test_x.py::test_typo"] = ["FWD-0SPF"]
    problems = consistency_problems(catalogue(broken), tests)
    assert "NEW-REQ has no test" in problems
    assert "test_x.py::test_orphan names no requirement" in problems
    assert "test_x.py::test_typo names unknown requirement FWD-0SPF" in problems
