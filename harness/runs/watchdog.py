"""Limits a worker cannot escape: checked from outside, in the scheduler.

The in-process step timer (agent.clock) cannot interrupt code stuck in C, a game that hangs,
or a model call that never returns. The scheduler reads each worker's phase (runs.phase)
and ends a worker that stays in one phase past its limit, or whose episode passes its
wall-clock cap. The phase says whose fault it was:
- scaffold code past the step timeout (plus a grace period): the scaffold's (scored);
- a game call past `env_call_s`: the env's (infrastructure);
- a model call past the client's own timeout and retries: the model server's (infrastructure);
- the whole episode past `episode_s`: a limit of the set-up (infrastructure, said loudly);
- an episode folder past its size limit (the trace, the logs, whatever the worker wrote there):
  the scaffold's (scored), since only its code writes without bound.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from harness.runs.phase import Phase

GRACE_S = 10.0  # beyond the in-process timer, which should have fired first
RETRY_BACKOFF_S = 60.0  # the openai client's exponential backoff between retries, at most


@dataclass(frozen=True)
class WatchLimits:
    step_timeout_s: float  # scaffold code, per call (0: no limit)
    model_call_s: float  # one chat call including the client's retries
    env_call_s: float  # one game call (reset or step)
    episode_s: float  # the whole episode, wall clock

    @classmethod
    def of(cls, step_timeout_s: float, model_timeout_s: float, model_retries: int, env_timeout_s: float,
           episode_timeout_s: float) -> WatchLimits:  # fmt: skip
        return cls(step_timeout_s, model_timeout_s * (model_retries + 1) + RETRY_BACKOFF_S, env_timeout_s,
                   episode_timeout_s)  # fmt: skip


@dataclass(frozen=True)
class Overdue:
    kind: str  # the episode's error_kind: scaffold | env | model | episode_timeout
    message: str


def overdue(limits: WatchLimits, phase: Phase | None, started: float, now: float | None = None) -> Overdue | None:
    """Why a worker must be ended now, or None. `started` is the episode's time.time() start."""
    now = time.time() if now is None else now
    if limits.episode_s > 0 and now - started > limits.episode_s:
        where = f" (in {phase.name}, step {phase.step})" if phase else ""
        return Overdue("episode_timeout", f"the episode passed its wall-clock cap of {limits.episode_s:g} s{where}; "
                                          "the worker was ended from outside (raise --episode-timeout if the cap is too low)")  # fmt: skip
    if phase is None:
        return None
    age = phase.age_s(now)
    if phase.name == "scaffold" and limits.step_timeout_s > 0 and age > limits.step_timeout_s + GRACE_S:
        return Overdue("scaffold", f"scaffold code ran {age:.0f} s in step {phase.step}, past the step timeout of "
                                   f"{limits.step_timeout_s:g} s, without returning to Python (stuck in C code?); "
                                   "the worker was ended from outside")  # fmt: skip
    if phase.name == "env" and limits.env_call_s > 0 and age > limits.env_call_s:
        return Overdue("env", f"the game did not answer for {age:.0f} s at step {phase.step} (limit "
                              f"{limits.env_call_s:g} s); the worker was ended from outside")  # fmt: skip
    if phase.name == "model" and limits.model_call_s > 0 and age > limits.model_call_s:
        return Overdue("model", f"a model call did not return for {age:.0f} s at step {phase.step} (limit "
                                f"{limits.model_call_s:g} s, the client's timeout and retries); the worker was ended from outside")  # fmt: skip
    return None


def folder_bytes(folder: Path, stop_at: int) -> int:
    """The bytes of the files under `folder` (links not followed); counting stops past `stop_at`."""
    total, pending = 0, [str(folder)]
    while pending and total <= stop_at:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                pending.append(entry.path)
            elif entry.is_file(follow_symlinks=False):
                try:
                    total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    pass
    return total


def oversized(folder: Path, limit: int) -> Overdue | None:
    """The verdict on an episode folder past its size limit (0: no limit), or None."""
    if limit <= 0:
        return None
    if folder_bytes(folder, limit) <= limit:
        return None
    return oversized_verdict(limit)


def oversized_verdict(limit: int) -> Overdue:
    """An episode folder passed `limit` bytes: the scaffold's fault (only its code writes without bound)."""
    return Overdue("scaffold", f"the episode folder passed its limit of {limit} bytes (the trace, the logs and any file "
                               f"written there); the worker was ended from outside (raise --max-episode-bytes if the "
                               f"limit is too low)")  # fmt: skip
