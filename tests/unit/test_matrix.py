"""The side-by-side matrix: each cell judged against RFC 3884's prediction."""
from __future__ import annotations

import json

from testbed.matrix import AGREES, DIFFERS, DOCUMENTED, NOT_APPLICABLE, NOT_CHECKED, build_matrix, judge, matrix_table
from testbed.requirements import catalogue, mode_predictions


def test_judgement_of_a_cell():
    assert judge("passed", predicted_failure=False, documented=False) == AGREES
    assert judge("failed", predicted_failure=True, documented=False) == AGREES
    assert judge("failed", predicted_failure=False, documented=False) == DIFFERS
    assert judge("passed", predicted_failure=True, documented=False) == DIFFERS
    assert judge("passed", predicted_failure=True, documented=True) == DOCUMENTED
    assert judge("not run", predicted_failure=True, documented=False) == NOT_APPLICABLE
    assert judge("not run", predicted_failure=False, documented=False, tests=0) == NOT_CHECKED


def test_predictions_name_known_requirements_and_iiptran_is_predicted_to_pass_everything():
    predictions = mode_predictions()
    assert set(predictions) == {"iiptran", "tunnel-policy", "tunnel-interface"}
    assert predictions["iiptran"].predicted_failures == {}
    assert "SRC-HOST" in predictions["tunnel-policy"].predicted_failures


def _write_results(folder, verdicts: dict[str, str]) -> None:
    folder.mkdir(parents=True)
    requirements = {rid: {"verdict": verdicts.get(rid, "passed"), "tests": ["t"]} for rid in catalogue()}
    (folder / "results.json").write_text(json.dumps({"requirements": requirements, "lab": {}}))


def test_a_verdict_the_rfc_does_not_predict_fails_the_matrix(tmp_path):
    _write_results(tmp_path / "iiptran", {"SRC-HOST": "failed"})
    policy = {rid: "failed" for rid in mode_predictions()["tunnel-policy"].predicted_failures}
    _write_results(tmp_path / "tunnel-policy", policy)
    matrix = build_matrix(tmp_path, ["iiptran", "tunnel-policy"])
    assert not matrix["ok"]
    assert matrix["problems"] == ["iiptran: SRC-HOST failed, RFC 3884 predicts a pass"]
    assert "failed (!= RFC)" in matrix_table(matrix)


def test_the_predicted_outcome_passes_the_matrix(tmp_path):
    _write_results(tmp_path / "iiptran", {})
    _write_results(tmp_path / "tunnel-policy",
                   {rid: "failed" for rid in mode_predictions()["tunnel-policy"].predicted_failures})
    matrix = build_matrix(tmp_path, ["iiptran", "tunnel-policy"])
    assert matrix["ok"], matrix["problems"]


def test_a_mode_whose_run_wrote_nothing_fails_the_matrix(tmp_path):
    _write_results(tmp_path / "iiptran", {})
    matrix = build_matrix(tmp_path, ["iiptran", "tunnel-interface"])
    assert not matrix["ok"] and "tunnel-interface: the run wrote no results.json" in matrix["problems"]


def test_a_run_that_collected_nothing_fails_the_matrix(tmp_path):
    folder = tmp_path / "iiptran"
    folder.mkdir()
    requirements = {rid: {"verdict": "not run", "tests": []} for rid in catalogue()}
    (folder / "results.json").write_text(json.dumps({"requirements": requirements, "lab": {}}))
    matrix = build_matrix(tmp_path, ["iiptran"])
    assert not matrix["ok"]
    assert "iiptran: FWD-IFACE was not checked (no test of the run covers it)" in matrix["problems"]
