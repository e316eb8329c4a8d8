"""Every SA the nodes' kernels held during a lab's life, as read from them.

Captures are decrypted after the fact, sometimes after an SA was rekeyed
or a link rebuilt; the book keeps each SA it has seen, so a capture
decrypts with the keys that were in force when it was taken.
"""
from __future__ import annotations

import time

from testbed.sa import SecurityAssociation
from testbed.parallel import parallel
from testbed.probe import xfrm
from testbed.runtime.base import Runtime


class SaBook:
    def __init__(self, seen: list[SecurityAssociation] | None = None):
        self._seen: dict[tuple, SecurityAssociation] = {}
        self.observed_at = 0.0          # when the kernels were last read (time.time())
        for sa in seen or []:
            self._add(sa)

    def _add(self, sa: SecurityAssociation) -> None:
        self._seen.setdefault((sa.src, sa.dst, sa.spi, sa.algorithm, sa.key, sa.auth_key), sa)

    def observe(self, runtime: Runtime, nodes: list[str], policies: bool = True) -> dict[str, xfrm.Sad]:
        """Read each node's SAD and SPD (or its SAD alone) now, side by side,
        remember every SA; return the readings."""
        self.observed_at = time.time()
        read = xfrm.read if policies else xfrm.read_sad
        readings = parallel([lambda node=node: read(runtime, node) for node in nodes])
        for sad in readings:
            # A larval state has no keys; an SA's are in the reading that finds it complete.
            for state in sad.keyed:
                if state.proto == "esp":
                    self._add(state.as_sa())
        return dict(zip(nodes, readings))

    @property
    def sas(self) -> list[SecurityAssociation]:
        return list(self._seen.values())

    def spis(self) -> set[int]:
        return {sa.spi for sa in self._seen.values()}
