"""A lab's state says what it is: a bring-up whose process died is not a
lab that is up."""
from __future__ import annotations

import subprocess
import sys

from testbed import lab_state


def test_a_dead_owner_mid_bring_up_is_an_interrupted_lab():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = {"pid": child.pid, "start": lab_state._start_ticks(child.pid)}
    child.wait()
    assert lab_state.interrupted({"phase": lab_state.BUILDING, "owner": owner}) == \
        f"interrupted during bring-up (process {child.pid} is gone)"
    assert lab_state.interrupted({"phase": lab_state.UP, "owner": owner}) == ""      # up: nobody needs to stay


def test_a_living_owner_or_a_pid_reused_by_another_process():
    assert lab_state.interrupted({"phase": lab_state.BUILDING, "owner": lab_state.me()}) == ""
    stranger = {**lab_state.me(), "start": -1}        # the same pid, started at another time
    assert lab_state.interrupted({"phase": lab_state.JOINING, "owner": stranger}).startswith("interrupted during join")


def test_the_state_file_is_written_0600(tmp_path):
    path = tmp_path / "lab" / "state.json"
    lab_state.write(path, {"phase": lab_state.UP})
    assert path.stat().st_mode & 0o777 == 0o600 and lab_state.read(path) == {"phase": "up"}
