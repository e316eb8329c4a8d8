"""The CLI's subcommands as a registry: one module per subcommand (its
arguments, its checks of the input, where it must run, and what it does
there), one list of them. testbed/cli.py parses a command line against it
and runs the command where its datapath is; the guest agent calls it the
same way.

Where a command runs (`place`):
- here: it needs no datapath (compare, generate, validate, ...);
- datapath: where the kernel has the datapath: here, or re-run with the
  same command line in a one-shot guest;
- lab: a lab kept up: here, or in the lab's long-lived guest;
- host: it boots its own guests (one per kernel series) and judges here;
  `orchestrates(args)` says when (its inner step is a datapath command).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from testbed.runner import RUNNERS


def _nothing(args: argparse.Namespace) -> None:
    return None


def _never(args: argparse.Namespace) -> bool:
    return False


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]         # where the datapath is (natively, or in the guest)
    place: str = "datapath"
    check: Callable[[argparse.Namespace], None] = _nothing       # bad input: exit 2 before anything boots
    orchestrates: Callable[[argparse.Namespace], bool] = _never  # place 'host': boots its own guests now
    host: Callable[[argparse.Namespace, bool], int] | None = None
    docker: Callable[[argparse.Namespace], bool] = _never        # needs the node image before a guest boots
    writable: Callable[[argparse.Namespace], list[Path]] | None = None   # folders the guest writes (reports/)
    after_guest: Callable[[argparse.Namespace], None] = _nothing        # here, once the guest is done
    guest_argv: Callable[[argparse.Namespace], list[str]] = lambda args: []  # more words for the guest


def _registry() -> dict[str, Command]:
    from testbed.commands import (batch, check, compare, down, exec_in, fault, gate, generate, images,
                                  implementations, join, kernel, matrix, profiles, run, status, test, up,
                                  validate)
    modules = (up, down, status, exec_in, join, check, fault, test, profiles, batch, matrix, implementations, gate,
               validate, generate, run, kernel, images, compare)
    return {module.COMMAND.name: module.COMMAND for module in modules}


def global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """The options of every command, accepted before or after the subcommand."""
    default = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
    parser.add_argument("--runner", default=default("auto"), choices=RUNNERS,
                        help="where the datapath runs: this kernel, a guest, or auto (default)")
    parser.add_argument("--guest-memory", type=int, metavar="MB", default=default(None),
                        help="the guest's memory when it runs there (default 2048, or IIPTRAN_GUEST_MEMORY)")
    parser.add_argument("--kernel", metavar="SERIES", default=default(None),
                        help="the Debian kernel series the guest boots: 6.1 (default) or 6.12, or IIPTRAN_KERNEL; "
                             "natively the kernel is the one running")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iiptran", description="bring RFC 3884 labs up and down, inspect them, "
                                     "run the conformance suite")
    global_options(parser, suppress=False)
    anywhere = argparse.ArgumentParser(add_help=False)
    global_options(anywhere, suppress=True)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS.values():
        command.arguments(sub.add_parser(command.name, help=command.help, parents=[anywhere]))
    return parser


COMMANDS: dict[str, Command] = _registry()
