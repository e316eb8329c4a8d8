"""The words a run's verdicts are given in, shared by the suite, the report
and everything that judges runs side by side (matrix, implementations,
profiles, compare). The ground floor: it imports nothing of the project.

A test's outcome, and a requirement's verdict (the worst of its tests'):

- passed: the check ran and the RFC's behaviour was seen;
- failed: the check ran and saw something else (its own message says what);
- error: the suite itself broke (a fixture or the lab, not a precondition);
- could not be performed: a precondition of the check did not hold (the
  control packet did not go through, the lab did not converge), so the
  check proves nothing either way; a failure, never a pass or a deviation;
- known deviation: the behaviour a record of conformance/deviations.yaml
  describes was seen, every fact of its signature held, in a lab the
  record covers;
- informative: an observation of what an RFC calls "one possible
  approach" (no MUST or SHOULD): recorded with its evidence, neither a
  pass nor a failure;
- not run: the check does not apply to this lab (said why).
"""
from __future__ import annotations

PASSED = "passed"
FAILED = "failed"
ERROR = "error"
NOT_PERFORMED = "could not be performed"
DEVIATION = "known deviation"
INFORMATIVE = "informative"
NOT_RUN = "not run"

# Worst first: a requirement's verdict is the first of these any of its tests has.
SEVERITY = [FAILED, ERROR, NOT_PERFORMED, DEVIATION, INFORMATIVE, NOT_RUN, PASSED]
# What makes a run (and a negative profile's broken requirement) fail.
FAILING = frozenset({FAILED, ERROR, NOT_PERFORMED})
# Verdicts of a check that ran and judged (for "applies here only" in the matrices).
JUDGED = frozenset({PASSED, INFORMATIVE})


def requirement_verdict(outcomes: list[str]) -> str:
    """The worst outcome of a requirement's tests ('error' counts as
    'failed'); 'not run' when none ran."""
    if not outcomes:
        return NOT_RUN
    ran = [FAILED if o == ERROR else o for o in outcomes if o != NOT_RUN]
    if not ran:
        return NOT_RUN
    return min(ran, key=SEVERITY.index)
