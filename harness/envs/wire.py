"""Low-latency waiting on a socket, shared by the env server and its client.

A process that blocks on a socket lets its (virtual) CPU idle, and waking it costs more than
the round trip itself (measured: ~100 us of a ~300 us served step). Both sides therefore
poll for a short while before they block: a step answer or the next request usually comes
within it; past it, the wait is long anyway (a model call) and blocking costs nothing.
"""

from __future__ import annotations

import select
import socket
import time

SPIN_S = 0.002  # at most 2 ms of polling per wait: ~0.2% of a step that waits on a model


def wait_readable(sock: socket.socket, spin_s: float = SPIN_S) -> None:
    """Return as soon as `sock` has data, polling for up to `spin_s` (then the caller blocks)."""
    deadline = time.perf_counter() + spin_s
    while time.perf_counter() < deadline:
        if select.select([sock], [], [], 0)[0]:
            return
