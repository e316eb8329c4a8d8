"""Lab files: the figures load, bad files fail with file + field named and exit code 2."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from testbed.errors import TopologyError
from testbed.topology.loader import TOPOLOGY_DIR, load

PROJECT = Path(__file__).resolve().parents[2]


def _broken(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load((TOPOLOGY_DIR / "fig6.yaml").read_text())
    edit(data)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("name", ["fig3", "fig6"])
def test_figures_load(name):
    topology = load(name)
    assert topology.name == name
    assert topology.flows


@pytest.mark.parametrize("edit, field, words", [
    (lambda d: d["vn_nodes"]["N"].update(router="R9"), "vn_nodes.N.router", "unknown base router 'R9'"),
    (lambda d: d["virtual_links"][0].update(ends=["A", "Q"]), "virtual_links.0.ends", "unknown VN node 'Q'"),
    (lambda d: d["vn_nodes"]["B"].update(access="10.1.1.0/30"), "vn_nodes.B.access", "overlaps"),
    (lambda d: d["vn_nodes"]["A"].update(lan="192.168.1.0/33"), "vn_nodes.A.lan", ""),
    (lambda d: d["vn_nodes"]["A"].update(colour="red"), "vn_nodes.A.colour", "Extra inputs"),
    (lambda d: d["defaults"]["ipsec"].update(algorithm="des"), "defaults.ipsec.algorithm", ""),
    (lambda d: d["virtual_links"].append(dict(d["virtual_links"][0], subnet="172.16.9.0/30")),
     "virtual_links.3.ends", "second virtual link"),
    (lambda d: d["base"]["links"].clear(), "base.links", "connected"),
    (lambda d: d["virtual_links"][1].update(label="AB"), "virtual_links.1.label", "label 'AB'"),
    (lambda d: d.update(datapath="tunnel-magic"), "datapath", "'iiptran', 'tunnel-policy' or 'tunnel-interface'"),
    (lambda d: d.update(backend="podman"), "backend", "'netns' or 'docker'"),
])
def test_bad_file_names_file_and_field(tmp_path, edit, field, words):
    path = _broken(tmp_path, edit)
    with pytest.raises(TopologyError) as raised:
        load(str(path))
    message = str(raised.value)
    assert str(path) in message and field in message and words in message


def test_not_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(TopologyError, match="not valid YAML"):
        load(str(path))


def test_missing_file():
    with pytest.raises(TopologyError, match="no such topology file"):
        load("nonexistent-figure")


@pytest.mark.parametrize("command", ["validate", "up", "test"])
def test_cli_rejects_bad_file_with_exit_2_and_no_traceback(tmp_path, command):
    path = _broken(tmp_path, lambda d: d["vn_nodes"]["N"].update(router="R9"))
    done = subprocess.run([sys.executable, "-m", "testbed", command, str(path)], cwd=PROJECT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "vn_nodes.N.router" in done.stderr and str(path) in done.stderr
    assert "Traceback" not in done.stderr
    # Nothing was created: no lab state, no namespaces, no guest booted.
    assert "QEMU" not in done.stderr
    assert "iipt-" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_cli_rejects_bad_lab_name():
    done = subprocess.run([sys.executable, "-m", "testbed", "up", "fig6", "--name", "Bad-Name"], cwd=PROJECT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "lab name 'Bad-Name'" in done.stderr


@pytest.mark.parametrize("argv, words", [
    (["test", "fig6", "--profile", "nope"], "unknown profile 'nope'"),
    (["test", "fig6", "--profile", "no-policies", "--mode", "tunnel-policy"], "negative profiles break IIPtran"),
    (["matrix", "fig6", "--modes", "iiptran,bogus"], "unknown ['bogus']"),
    (["profiles", "--only", "nope"], "unknown profiles ['nope']"),
])
def test_cli_rejects_bad_mode_and_profile_names_with_exit_2(argv, words):
    done = subprocess.run([sys.executable, "-m", "testbed", *argv], cwd=PROJECT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, done.stderr
