"""The CLI's subcommands are a registry: one module each, one lookup; the
options every command takes may come before or after the subcommand."""
from __future__ import annotations

import pytest

from testbed.commands import COMMANDS, build_parser


def test_global_options_before_or_after_the_subcommand():
    parse = build_parser().parse_args
    assert parse(["test", "fig6", "--kernel", "6.12"]).kernel == "6.12"
    assert parse(["--kernel", "6.12", "test", "fig6"]).kernel == "6.12"
    after = parse(["test", "fig6", "--runner", "guest", "--guest-memory", "3072"])
    assert (after.runner, after.guest_memory) == ("guest", 3072)
    assert (parse(["test", "fig6"]).kernel, parse(["test", "fig6"]).runner) == (None, "auto")


def test_every_command_says_where_it_runs():
    for command in COMMANDS.values():
        assert command.place in ("here", "datapath", "lab", "host"), command.name
        assert (command.place == "host") == (command.host is not None), command.name
    assert {"up", "down", "status", "exec", "join", "check", "fault"} == {
        c.name for c in COMMANDS.values() if c.place == "lab"}


def test_bad_input_is_refused_before_anything_boots():
    from testbed.errors import UserError
    args = build_parser().parse_args(["matrix", "fig6", "--modes", "iiptran,nope"])
    with pytest.raises(UserError, match="unknown"):
        COMMANDS["matrix"].check(args)
