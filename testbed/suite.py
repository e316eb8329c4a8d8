"""Run the conformance suite (pytest, in this process) and write the report folder."""
from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

from testbed.paths import PROJECT

CONFORMANCE = PROJECT / "conformance"


def run_suite(report_dir: Path, topology: str | None = None, name: str | None = None,
              lab: str | None = None, select: str | None = None, overrides: dict[str, str] | None = None,
              fault: str | None = None, page: bool = True) -> int:
    """Either bring `topology` up as lab `name` for the run (its lab-wide
    fields overridden by `overrides`, broken by `fault`), or check the live `lab`."""
    # Only the suite's own plugins: a third-party pytest plugin installed on
    # the machine can neither change verdicts nor cost start-up time.
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    import pytest

    from testbed.report.html import terminal_table, write_report

    report_dir.mkdir(parents=True, exist_ok=True)
    for old in [*report_dir.glob("*.pcap"), *report_dir.glob("evidence/*.json")]:
        old.unlink()
    # Short tracebacks: the long style prints every frame's arguments (labs,
    # captured packets), seconds per failure under emulation.
    args = [str(CONFORMANCE), "-p", "no:cacheprovider", "-q", "-rfE", "--durations=8", "--tb=short",
            "-o", "console_output_style=classic",
            f"--junitxml={report_dir / 'junit.xml'}", "-o", "junit_family=xunit2",
            f"--report-dir={report_dir}"]
    if lab:
        args.append(f"--lab={lab}")
    else:
        args += [f"--topology={topology}", f"--lab-name={name}"]
        args += [f"--override={key}={value}" for key, value in (overrides or {}).items() if value is not None]
        if fault:
            args.append(f"--fault={fault}")
    if select:
        args += ["-k", select]
    from testbed.suite_progress import SuiteProgress, previous_timings
    progress = SuiteProgress(name or lab or "suite", previous_timings(report_dir))
    with _terminal_log(report_dir / "run.log"):
        code = int(pytest.main(args, plugins=[progress]))
    written = write_report(report_dir, page)
    print(terminal_table(report_dir))
    print(f"iiptran: report written to {written} (results.json, junit.xml, pcaps beside it)")
    return code


class _Tee(io.TextIOBase):
    """What the suite prints, to the terminal and to the run's log."""

    def __init__(self, terminal, log):
        self.terminal, self.log = terminal, log

    def write(self, text: str) -> int:
        self.log.write(text)
        return self.terminal.write(text)

    def flush(self) -> None:
        self.log.flush()
        self.terminal.flush()

    def isatty(self) -> bool:
        return self.terminal.isatty()

    def fileno(self) -> int:
        return self.terminal.fileno()

    @property
    def encoding(self):
        return getattr(self.terminal, "encoding", "utf-8")


@contextlib.contextmanager
def _terminal_log(path: Path):
    """run.log beside the report (a batch worker's output already goes there)."""
    if os.environ.get("IIPTRAN_BATCH_WORKER") == "1":
        yield
        return
    with path.open("w") as log:
        saved, sys.stdout = sys.stdout, _Tee(sys.stdout, log)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stdout = saved
