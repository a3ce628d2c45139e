"""What a worker is doing right now, shared with the scheduler through a tiny mapped file.

The worker marks each phase of a step (scaffold code, a model call, the game, the harness's
own work) by writing into a memory-mapped file in its episode folder: no system call, so it
costs nothing per step. The scheduler's watchdog reads the file to end a worker stuck in one
phase too long from outside (code stuck in C never sees an in-process timer) and to say whose
fault it was.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

PHASE_FILE = "phase"
PHASES = ("start", "scaffold", "model", "env", "harness")
_LAYOUT = struct.Struct("<8sdq")  # phase name, wall-clock time it began, step index


@dataclass(frozen=True)
class Phase:
    name: str
    since: float  # time.time() when the phase began
    step: int

    def age_s(self, now: float | None = None) -> float:
        return (now if now is not None else time.time()) - self.since


class PhaseMarker:
    """The worker's side: `marker.enter("env", step)` at each phase change."""

    def __init__(self, episode_dir: Path) -> None:
        path = Path(episode_dir) / PHASE_FILE
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.ftruncate(descriptor, _LAYOUT.size)
            self._map = mmap.mmap(descriptor, _LAYOUT.size)
        finally:
            os.close(descriptor)
        self.step = 0
        self.enter("start")

    def enter(self, phase: str, step: int | None = None) -> None:
        if step is not None:
            self.step = step
        _LAYOUT.pack_into(self._map, 0, phase.encode(), time.time(), self.step)

    def close(self) -> None:
        self._map.close()


class NoPhaseMarker:
    """Where no scheduler watches (in-process episodes, tests)."""

    step = 0

    def enter(self, phase: str, step: int | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def read_phase(episode_dir: Path) -> Phase | None:
    """The worker's current phase, or None if it has not written one (or it is unreadable)."""
    try:
        data = (Path(episode_dir) / PHASE_FILE).read_bytes()
    except OSError:
        return None
    if len(data) < _LAYOUT.size:
        return None
    raw, since, step = _LAYOUT.unpack_from(data)
    name = raw.rstrip(b"\0").decode(errors="replace")
    return Phase(name, since, step) if name in PHASES else None
