"""Variants of a lab named on the command line (`iiptran batch`), and the
report folder each run gets (the same names `iiptran test` uses)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from testbed.errors import UserError
from testbed.topology.overrides import with_overrides
from testbed.topology.loader import load
from testbed.variants import folder_name, parse

PROJECT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("spec, folder", [
    ("fig6", "fig6"), ("fig6:keying=ikev2", "fig6-ikev2"), ("fig6:backend=docker,keying=ikev2", "fig6-docker-ikev2"),
    ("fig3:routing=static", "fig3-static"), ("fig6:datapath=tunnel-policy", "fig6-tunnel-policy")])
def test_a_variant_names_its_report_folder(spec, folder):
    topology, overrides = parse(spec)
    assert folder_name(with_overrides(load(topology), overrides)) == folder


@pytest.mark.parametrize("spec, words", [("fig6:keying", "field=value"), ("fig6:colour=red", "'colour'"),
                                         ("fig6:keying=ikev3", "unknown keying 'ikev3'"),
                                         ("fig6:datapath=tunnel-policy,keying=ikev2", "IKEv2 keying builds IIPtran")])
def test_a_bad_variant_is_refused_by_name(spec, words):
    with pytest.raises(UserError, match=words):
        parse(spec)


def test_the_cli_refuses_a_bad_variant_with_exit_2_before_anything_runs():
    done = subprocess.run([sys.executable, "-m", "testbed", "batch", "fig6:keying=ikev3"], cwd=PROJECT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown keying 'ikev3'" in done.stderr and "Traceback" not in done.stderr
    assert "QEMU" not in done.stderr


def test_two_variants_that_would_share_a_report_folder_are_refused(tmp_path):
    from testbed.variants import run_variants
    with pytest.raises(UserError, match="share a report folder"):
        run_variants(["fig6:keying=ikev2", "fig6:keying=ikev2,routing=frr"], tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_failed_run_is_explained_by_its_log_summary_lines(tmp_path):
    from testbed.batch import Run, why_it_failed
    run = Run("fig6", "fig6", "x", tmp_path)
    run.log.write_text("....F..\nsome traceback\nFAILED conformance/test_a.py::test_b - AssertionError: no ESP\n"
                       "ERROR conformance/test_c.py::test_d - TimeoutError: OSPF Full\n1 failed\n")
    assert why_it_failed(run) == ["FAILED conformance/test_a.py::test_b - AssertionError: no ESP",
                                  "ERROR conformance/test_c.py::test_d - TimeoutError: OSPF Full"]
    run.log.write_text("\n".join(f"line {n}" for n in range(30)))
    assert why_it_failed(run, limit=3) == ["line 27", "line 28", "line 29"]
    assert why_it_failed(Run("gone", "fig6", "y", tmp_path / "nothing"))[0].startswith("no log")
