"""Errors the CLI turns into a message and an exit code instead of a traceback."""


class TestbedError(Exception):
    """Base class: `exit_code` is what the CLI returns."""

    exit_code = 1


class UserError(TestbedError):
    """The user asked for something invalid (bad file, unknown node or lab)."""

    exit_code = 2


class TopologyError(UserError):
    """A topology file is invalid; the message names the file and the field."""


class EnvironmentProblem(TestbedError):
    """The machine lacks something the run needs (a package, a kernel feature)."""

    exit_code = 3


class WaitTimeout(TestbedError):
    """A bounded wait gave up; the message says what it was waiting for."""


class PreconditionFailed(TestbedError):
    """A check's precondition did not hold (the control packet did not get
    through, the sender never sent what was forged): the check could not be
    performed. The suite reports it as such, a failure of its own, never as
    a pass or a known deviation."""
