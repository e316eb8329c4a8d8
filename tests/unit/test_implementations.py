"""The implementation matrix: the shipped list of implementations, how each
cell is judged against the reference, and bad input refused before a boot."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testbed import implementations as im

PROJECT = Path(__file__).resolve().parents[2]


def test_the_shipped_implementations_load_and_fit_fig6():
    found = im.load_implementations()
    assert found["reference"].kernel == "6.1" and found["kernel-6.12"].kernel == "6.12"
    im.check_overrides("fig6", found, list(found))
    assert im.overrides_of(found, "bird")["routing"] == "bird" and im.overrides_of(found, "bird")["keying"] == "manual"
    assert im.chosen(found, ["bird"]) == ["reference", "bird"]


@pytest.mark.parametrize("verdict, reference, explained, judgement", [
    ("passed", "passed", False, im.SAME), ("failed", "passed", False, im.DIFFERS),
    ("failed", "passed", True, im.EXPLAINED), ("passed", "not run", False, im.ONLY_HERE),
    ("known deviation", "passed", False, im.RECORDED), ("not run", "passed", False, im.DIFFERS),
    ("passed", "failed", False, im.DIFFERS), ("passed", None, False, im.REFERENCE_CELL)])
def test_a_cell_is_judged_against_the_reference(verdict, reference, explained, judgement):
    assert im.judge(verdict, reference, explained, tests=1) == judgement


def _results(folder: Path, verdicts: dict[str, str]) -> None:
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"lab": {"kernel": "6.1.0-test"}, "requirements": {
        req: {"verdict": v, "tests": ["t"]} for req, v in verdicts.items()}}))


def test_an_unexplained_difference_fails_the_matrix_and_a_skipped_kernel_is_not_run(tmp_path):
    found = im.load_implementations()
    _results(tmp_path / "reference", {"FWD-OSPF": "passed", "IKE-REKEY": "not run"})
    _results(tmp_path / "ikev2", {"FWD-OSPF": "passed", "IKE-REKEY": "passed"})
    _results(tmp_path / "bird", {"FWD-OSPF": "failed", "IKE-REKEY": "not run"})
    names = ["reference", "ikev2", "bird", "kernel-6.12"]
    matrix = im.build_matrix(tmp_path, names, found, {"kernel-6.12": "natively the running kernel"})
    assert matrix["implementations"]["ikev2"]["cells"]["IKE-REKEY"]["judgement"] == im.ONLY_HERE
    assert matrix["problems"] == ["bird: FWD-OSPF failed, the reference passed"] and not matrix["ok"]
    table = im.matrix_table(matrix)
    assert "failed (!= reference)" in table and "kernel-6.12: not run: natively the running kernel" in table
    from testbed.report.implementations_page import write_page
    page = write_page(tmp_path, matrix).read_text()
    assert 'href="bird/index.html#req-FWD-OSPF"' in page and "differs" in page


def test_a_run_that_wrote_nothing_is_a_problem(tmp_path):
    found = im.load_implementations()
    _results(tmp_path / "reference", {"FWD-OSPF": "passed"})
    matrix = im.build_matrix(tmp_path, ["reference", "bird"], found, {})
    assert matrix["problems"][0].startswith("bird: the run wrote no results.json") and not matrix["ok"]


@pytest.mark.parametrize("argv, words", [(["fig6", "--only", "nosuch"], "unknown ['nosuch']"),
                                         (["nosuch"], "no such topology")])
def test_bad_input_is_refused_with_exit_2_before_anything_runs(tmp_path, argv, words):
    done = subprocess.run([sys.executable, "-m", "testbed", "implementations", *argv, "--report", str(tmp_path / "r")],
                          cwd=PROJECT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "r").exists() and "QEMU" not in done.stderr
