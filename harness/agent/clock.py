"""The step time limit: only the scaffold's own time counts, and the scaffold cannot dodge it.

- Model calls pause the clock: they have their own timeout (the chat client's), and a slow
  server is not the scaffold's fault.
- A memory operation and its record are shielded: an expiry inside one is delivered when it
  ends, so the memory directory and its recorded operations never get out of step.
- StepTimeout is a BaseException: a scaffold's `except Exception` cannot swallow it; one that
  swallows it anyway (`except BaseException`, bare `except`) gets it again every second, and
  the step counts as timed out whatever it returns.
- Code stuck in C (a regex, a native library) never sees the signal: the scheduler's watchdog
  ends that worker from outside (runs.watchdog).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

REFIRE_S = 1.0  # after an expiry, how often the timeout is raised again if swallowed


class StepTimeout(BaseException):
    """The scaffold's own time in one call (reset or step) exceeded the step time limit."""


class ScaffoldClock:
    """SIGALRM-based budget of scaffold time per call; a no-op off the main thread or when 0."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.enabled = seconds > 0 and threading.current_thread() is threading.main_thread()
        self.expired = False
        self._running = False
        self._shield_depth = 0
        self._pending = False
        self._paused: tuple[float, float] | None = None

    def _expire(self, signum: int, frame: Any) -> None:
        if self._shield_depth:
            self._pending = True  # delivered when the shielded operation ends
            return
        self.expired = True
        raise StepTimeout(f"the scaffold took longer than {self.seconds:g} s of its own time in one call")

    @contextmanager
    def running(self) -> Iterator[None]:
        """Around one scaffold call; raises StepTimeout at the end if it expired but was swallowed."""
        if not self.enabled:
            yield
            return
        self.expired = self._pending = False
        previous = signal.signal(signal.SIGALRM, self._expire)
        signal.setitimer(signal.ITIMER_REAL, self.seconds, REFIRE_S)
        self._running = True
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            self._running = False
        if self.expired or self._pending:
            self.expired = True
            raise StepTimeout(f"the scaffold took longer than {self.seconds:g} s of its own time in one call "
                              "(and caught the timeout)")  # fmt: skip

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Stop counting (around a model call); resume with the time that was left."""
        if not (self.enabled and self._running) or self._paused is not None:
            yield
            return
        self._paused = signal.setitimer(signal.ITIMER_REAL, 0)
        try:
            yield
        finally:
            remaining, interval = self._paused
            self._paused = None
            if remaining > 0:
                signal.setitimer(signal.ITIMER_REAL, remaining, interval)

    @contextmanager
    def shielded(self) -> Iterator[None]:
        """Defer an expiry to the end of the block (a memory operation and its record)."""
        self._shield_depth += 1
        try:
            yield
        finally:
            self._shield_depth -= 1
        if self._shield_depth == 0 and self._pending and self._running:
            self._pending = False
            self.expired = True
            raise StepTimeout(f"the scaffold took longer than {self.seconds:g} s of its own time in one call")
