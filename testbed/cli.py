"""`iiptran`: bring RFC 3884 labs up and down, inspect them, run the conformance suite.

The subcommands are a registry (testbed/commands/); here a command line is
parsed against it and its command run where its datapath is: here, in a
one-shot guest given the same command line, in the long-lived guest of a
lab kept up, or by the command itself when it boots its own guests.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from testbed.commands import COMMANDS, Command, build_parser
from testbed.errors import TestbedError
from testbed.names import check_lab_name
from testbed.paths import REPORTS, in_guest
from testbed.runner import announce, decide, run_in_guest


def _in_finalizer(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every cleanup path runs; forked
    # children (e.g. a library's helper) keep the default and just exit.
    main_pid = os.getpid()

    def on_stop_signal(signum, frame):
        if os.getpid() != main_pid:
            os._exit(128 + signum)
        if _in_finalizer(frame):
            # Python prints and drops an exception raised inside __del__ (every
            # finished subprocess passes through Popen.__del__), and the run
            # would go on: deliver the signal again once the finalizer is done.
            threading.Timer(0.05, os.kill, (main_pid, signum)).start()
            return
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_stop_signal)
    signal.signal(signal.SIGINT, on_stop_signal)
    try:
        return dispatch(args, argv)
    except TestbedError as exc:
        print(f"iiptran: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("iiptran: interrupted; cleaned up", file=sys.stderr)
        return 130


def _guest_settings(args: argparse.Namespace) -> None:
    """The guest's memory and kernel series, for whatever boots one from
    this process (a bad value: exit 2 before anything boots). A guest is
    given the command line itself, these options included."""
    if args.guest_memory is not None:
        os.environ["IIPTRAN_GUEST_MEMORY"] = str(args.guest_memory)
    if os.environ.get("IIPTRAN_GUEST_MEMORY"):
        from testbed.vm.guest import guest_memory_mb
        guest_memory_mb()
    if args.kernel is not None:
        os.environ["IIPTRAN_KERNEL"] = args.kernel
    if os.environ.get("IIPTRAN_KERNEL"):
        from testbed.vm.kernel_cache import kernel_series
        kernel_series()


def dispatch(args: argparse.Namespace, argv: list[str]) -> int:
    _guest_settings(args)
    command = COMMANDS[args.command]
    if getattr(args, "name", None):
        check_lab_name(args.name)
    command.check(args)
    if command.place == "here" or in_guest():
        return command.run(args)
    path, reason = decide(args.runner)
    if command.place == "host" and command.orchestrates(args):
        announce(path, reason)
        return command.host(args, path == "native")
    if path == "guest":
        if command.docker(args):
            from testbed.commands.common import build_images
            from testbed.runtime.docker_engine import require_engine_binaries
            require_engine_binaries()
            build_images(path)     # the guest has no network: its engine imports the archive
        announce(path, reason)
        return _in_guest(command, args, argv)
    announce(path, reason)
    if os.environ.get("IIPTRAN_KERNEL"):
        print(f"iiptran: --kernel {os.environ['IIPTRAN_KERNEL']} picks the guest's kernel; running natively on "
              f"{os.uname().release} (--runner guest to boot the series)", file=sys.stderr)
    return command.run(args)


def _in_guest(command: Command, args: argparse.Namespace, argv: list[str]) -> int:
    """The same command line inside the guest: a lab kept up lives in its own
    long-lived guest; everything else runs in a one-shot guest."""
    if command.place == "lab":
        from testbed.vm.session import forward
        return forward(args, argv)
    writable = command.writable(args) if command.writable else [REPORTS]
    code = run_in_guest([sys.executable, "-m", "testbed", *argv, *command.guest_argv(args)], writable,
                        job=command.name, keep=topology_folders(args))
    command.after_guest(args)
    return code


def topology_folders(args: argparse.Namespace) -> list[Path]:
    """Folders of the lab files named by path, wherever they are: the guest
    sees its own scratch /tmp, not the host's."""
    from testbed.topology.loader import resolve_path
    from testbed.variants import parse
    given = getattr(args, "topology", None) or []
    names = [given] if isinstance(given, str) else list(given)
    variants = [parse(spec) for spec in getattr(args, "variants", None) or []]
    names += [topology for topology, _ in variants]
    programs = [getattr(args, "configure", None)] + [overrides.get("configure") for _, overrides in variants]
    return sorted({resolve_path(name).resolve().parent for name in names}
                  | {Path(program).resolve().parent for program in programs if program})


if __name__ == "__main__":
    sys.exit(main())
