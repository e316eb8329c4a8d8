"""The machine the suite runs on (the guest when this kernel lacks the
datapath) gives shells what they expect: process substitution needs /dev/fd."""
import subprocess


def test_bash_process_substitution_works():
    done = subprocess.run(["bash", "-c", "cat <(echo substituted)"], capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout) == (0, "substituted\n"), done.stderr
