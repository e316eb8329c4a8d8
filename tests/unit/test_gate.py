"""The gate plans every stage's runs into one pool per kernel series; a lab
two stages ask for runs once."""
from __future__ import annotations

from testbed.gate import PLAN, Stages, load_plan, unique


def test_the_plan_runs_each_lab_once_and_the_other_kernel_apart(tmp_path, monkeypatch):
    monkeypatch.setattr("testbed.gate.REPORTS", tmp_path)
    stages = Stages(load_plan(PLAN).model_copy(update={"variants": ["fig6:routing=static"]}))
    assert stages.series() == ["6.1", "6.12"]
    default = [run for run in stages.all() if stages.kernel(run) == "6.1"]
    made, copies = unique(default, "6.1")
    copied = [run.report.name for run in default if id(run) in copies]
    assert copied == ["reference"]                # the mode matrix's fig6 iiptran run serves both
    assert [run.report.name for run in stages.all() if stages.kernel(run) == "6.12"] == ["kernel-6.12"]
    assert len(made) == len(default) - 1
    # fig3 measures failover (BFD): two places; a fig6 run one
    weights = {run.title: run.weight for run in stages.runs["matrix"]}
    assert weights["fig3 with datapath iiptran"] == 2 and weights["fig6 with datapath iiptran"] == 1


def test_what_runs_after_the_pool_runs_in_order_each_with_its_log(tmp_path, capsys):
    import sys
    from testbed.gate import _After
    chain = [(f"step {i}", [sys.executable, "-c", f"print('step {i}'); raise SystemExit({i})"], tmp_path / f"{i}.log")
             for i in (0, 3)]
    after = _After(chain, {})
    after.start()
    assert after.wait() == {"step 0": 0, "step 3": 3}
    assert (tmp_path / "3.log").read_text() == "step 3\n"
    assert "step 3 (" in capsys.readouterr().out


def test_nothing_after_the_pool_until_started():
    from testbed.gate import _After
    assert _After([("never", ["false"], None)], {}).wait() == {}


def test_the_self_test_outcome_is_what_the_pools_guest_wrote_or_a_failure(tmp_path, monkeypatch, capsys):
    from testbed import gate
    monkeypatch.setattr(gate, "SELFTEST_LOG", tmp_path / "selftest.log")
    monkeypatch.setattr(gate, "SELFTEST_CODE", tmp_path / "selftest.json")
    assert gate._selftest_outcome() == 1                  # the guest never got to it
    assert "did not finish" in capsys.readouterr().out
    gate.SELFTEST_LOG.write_text("2 passed\n")
    gate.SELFTEST_CODE.write_text('{"returncode": 0}\n')
    assert gate._selftest_outcome() == 0
    assert "2 passed" in capsys.readouterr().out


def test_the_self_test_runs_where_it_is_asked_and_writes_its_code(tmp_path, monkeypatch):
    from testbed import gate
    monkeypatch.setattr(gate, "SELFTEST_LOG", tmp_path / "selftest.log")
    monkeypatch.setattr(gate, "SELFTEST_CODE", tmp_path / "selftest.json")
    monkeypatch.setattr(gate, "PROJECT", tmp_path)
    (tmp_path / "tests" / "kernel").mkdir(parents=True)
    (tmp_path / "tests" / "kernel" / "test_one.py").write_text(
        "import os\n\ndef test_it():\n    assert os.environ['IIPTRAN_SELFTEST_FIG6_REPORT'] == 'x'\n")
    assert gate.run_selftest(tmp_path / "x") != 0        # the self-test is handed exactly that report
    assert gate.run_selftest(type(tmp_path)("x")) == 0
    assert gate._selftest_outcome() == 0
