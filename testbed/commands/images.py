"""`iiptran images`: build the Docker backend's node image (cached per recipe)."""
from __future__ import annotations

from testbed.commands import Command
from testbed.commands.common import build_images


def run(args) -> int:
    from testbed.runner import decide
    path, _ = decide(args.runner)
    return build_images(path)


COMMAND = Command("images", "build the Docker backend's node image from images/node (cached)", lambda p: None, run,
                  place="here")
