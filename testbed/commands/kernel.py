"""`iiptran kernel`: say whether this kernel can run the datapath, and why."""
from __future__ import annotations

from testbed.commands import Command


def run(args) -> int:
    from testbed.runner import announce, decide
    announce(*decide(args.runner))
    return 0


COMMAND = Command("kernel", "say whether this kernel can run the datapath, and why", lambda p: None, run,
                  place="here")
