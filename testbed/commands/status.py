"""`iiptran status`: nodes, tunnels with their keying, adjacencies and the SAs each kernel holds."""
from __future__ import annotations

from testbed.commands import Command
from testbed.commands.common import lab_name, named


def run(args) -> int:
    from testbed import status
    from testbed.lab import Lab
    print(status.render(Lab.attach(lab_name(args))))
    return 0


COMMAND = Command("status", "nodes, tunnels, OSPF neighbours and SAs of a lab", named, run, place="lab")
