"""IP protocol names as /etc/protocols spells them (iproute2 and IKE
daemons print selectors with them: 4 is 'ipencap'). The bottom of the
package: it imports nothing of the project."""
from __future__ import annotations

import socket
import threading

_NUMBERS: dict[str, int] = {}
_LOCK = threading.Lock()


def protocol_number(word: str) -> int:
    """A protocol's number from its name or digits; -1 for a name not known.
    libc's getprotobyname is not reentrant: nodes are read side by side, and
    two lookups at once returned the file's first entry ('ip', 0), which
    reads as 'any protocol'. One lookup at a time, each name once."""
    if word.isdigit():
        return int(word)
    with _LOCK:
        if word not in _NUMBERS:
            try:
                _NUMBERS[word] = socket.getprotobyname(word)
            except OSError:
                _NUMBERS[word] = -1
        return _NUMBERS[word]
