"""The guest's memory is a runner option (big generated labs need more)."""
import pytest

from testbed.cli import main
from testbed.vm.guest import DEFAULT_MEMORY_MB, GuestSpec


def test_default_and_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("IIPTRAN_GUEST_MEMORY", raising=False)
    assert GuestSpec(run_dir=tmp_path).memory_mb == DEFAULT_MEMORY_MB
    monkeypatch.setenv("IIPTRAN_GUEST_MEMORY", "6144")
    assert GuestSpec(run_dir=tmp_path).memory_mb == 6144


@pytest.mark.parametrize("argv", [["--guest-memory", "12", "kernel"], ["--guest-memory", "999999", "kernel"]])
def test_bad_sizes_exit_2(monkeypatch, capsys, argv):
    monkeypatch.setenv("IIPTRAN_GUEST_MEMORY", "")     # restored after the test, whatever main() sets
    assert main(argv) == 2
    assert "give MB, 256 to 262144" in capsys.readouterr().err
