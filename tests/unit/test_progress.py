"""Progress of long commands: estimates from the previous run, plain lines
off a terminal, and the suite's lines in place of pytest's dots."""
from __future__ import annotations

import io
import json
import re

import pytest

from testbed.progress import Estimate, Progress, seconds
from testbed.suite_progress import SuiteProgress, previous_timings, timing_key


def test_estimate_uses_last_runs_timings_then_the_pace():
    estimate = Estimate(["a", "b", "c"], {"a": 10, "b": 20, "c": 30, "gone": 99})
    assert estimate.left() == 60
    estimate.finished("a", 12)
    assert estimate.left() == 50 and estimate.left("b", 5) == 45 and estimate.left("b", 50) == 30
    fresh = Estimate(["a", "b", "c"])
    assert fresh.left() is None, "no previous run and nothing done: no estimate"
    fresh.finished("a", 60)
    assert fresh.left() is None, "the first step carries the set-up: no pace from it alone"
    fresh.finished("b", 10)
    assert fresh.left() == 10 and fresh.source() == "the pace so far"


def test_plain_lines_say_step_outcome_elapsed_and_what_is_left():
    out = io.StringIO()
    progress = Progress("fig6", ["a", "b"], {"a": 1, "b": 90}, live=False, stream=out)
    progress.start("a", "FWD-PATH test_path[xy]")
    progress.finish("a", "FWD-PATH test_path[xy]", "passed")
    progress.close()
    line = out.getvalue()
    assert line.startswith("iiptran: fig6: [1/2] passed FWD-PATH test_path[xy] (0 s; 0 s in, about 1 min 30 s left "
                           "(last run's timings))"), line


def test_live_display_renders_through_rich():
    out = io.StringIO()
    progress = Progress("fig6", ["a"], live=True, stream=out)
    progress.start("a", "WIRE-ESP test_esp")
    progress.finish("a", "WIRE-ESP test_esp", "FAILED")
    progress.close()
    assert "[1/1] FAILED WIRE-ESP test_esp" in out.getvalue() and "iiptran:" not in out.getvalue()


def test_keys_match_between_pytest_and_results_json(tmp_path):
    assert timing_key("conformance/test_sad.py::test_x[xy]") == timing_key("conformance.test_sad::test_x[xy]")
    (tmp_path / "results.json").write_text(json.dumps({"tests": {"conformance.test_sad::test_x[xy]":
                                                                 {"outcome": "passed", "seconds": 4.5}}}))
    assert previous_timings(tmp_path) == {"test_sad::test_x[xy]": 4.5}
    assert previous_timings(tmp_path / "nowhere") == {}


def test_suite_plugin_prints_a_line_per_test_instead_of_dots(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("IIPTRAN_LIVE", "0")
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "def test_good():\n    pass\n"
        "def test_bad():\n    assert False, 'broken'\n"
        "@pytest.mark.skip(reason='not applicable')\ndef test_skipped():\n    pass\n")
    plugin = SuiteProgress("sample", {"test_sample::test_good": 3.0})
    code = pytest.main([str(tmp_path), "-q", "-p", "no:cacheprovider", "-o", "console_output_style=classic"],
                       plugins=[plugin])
    out = capsys.readouterr().out
    assert code == 1
    assert "iiptran: sample: [1/3] passed test_good" in out
    assert "iiptran: sample: [2/3] FAILED test_bad" in out
    assert "iiptran: sample: [3/3] not run test_skipped" in out
    # pytest's letters would lead the lines (".iiptran: ...", "Fiiptran: ...")
    assert not re.search(r"^[.Fs]+iiptran|^[.Fs]{2,}$", out, re.M), "pytest's letters are still printed"


def test_seconds_read_as_minutes_past_a_minute():
    assert (seconds(42), seconds(125)) == ("42 s", "2 min 05 s")


def test_runs_side_by_side_divide_what_is_left_but_the_last_run_does_not():
    out = io.StringIO()
    progress = Progress("matrix", ["a", "b", "c"], {"a": 100, "b": 100, "c": 100}, workers=2, live=False, stream=out)
    assert progress._left().startswith("about 2 min 30 s left")
    progress.start("a", "a")
    progress.finish("a", "a", "passed")
    progress.start("b", "b")
    progress.finish("b", "b", "passed")
    assert progress._left().startswith("about 1 min 40 s left"), "one run left takes its whole time"


def test_a_long_step_says_what_it_took_last_time_and_keeps_only_finished_timings(tmp_path):
    from testbed.progress import step
    out = io.StringIO()
    with step("kernel", "fetching the kernel", tmp_path, live=False, stream=out):
        pass
    with pytest.raises(RuntimeError):
        with step("image", "building the image", tmp_path, live=False, stream=out):
            raise RuntimeError("mirror down")
    with step("kernel", "fetching the kernel", tmp_path, live=False, stream=out):
        pass
    lines = out.getvalue().splitlines()
    assert lines[0] == "iiptran: fetching the kernel (no earlier timing)..."
    assert lines[1] == "iiptran: fetching the kernel: done in 0 s"
    assert lines[3] == "iiptran: building the image: stopped in 0 s"
    assert lines[4] == "iiptran: fetching the kernel (took 0 s last time)..."
    assert set(json.loads((tmp_path / "step-timings.json").read_text())) == {"kernel"}


def test_the_suites_output_is_also_kept_as_run_log(tmp_path, capsys, monkeypatch):
    from testbed.suite import _terminal_log
    monkeypatch.delenv("IIPTRAN_BATCH_WORKER", raising=False)
    with _terminal_log(tmp_path / "run.log"):
        print("iiptran: fig6: [1/1] passed")
    assert (tmp_path / "run.log").read_text() == "iiptran: fig6: [1/1] passed\n"
    assert capsys.readouterr().out == "iiptran: fig6: [1/1] passed\n"
    monkeypatch.setenv("IIPTRAN_BATCH_WORKER", "1")   # a worker's output goes to run.log already
    with _terminal_log(tmp_path / "other.log"):
        print("x")
    assert not (tmp_path / "other.log").exists()
