"""Continuing an episode from its last recorded step (a killed worker, a preempted machine).

An episode folder that holds steps but no finished result is continued, not replayed by the
model: the game is restored by playing the recorded actions again on the same seed (exact
seeding makes this exact, and every replayed observation is checked against the trace), the
memory directory is rebuilt from the recorded operations, and the scaffold gets back the state
its `state()` hook returned after the last recorded step (stored in the step record whenever
it changed). Only the played steps are kept: a last step the worker never finished (its model
calls were made, its action never reached the game) goes to `discarded-steps.jsonl`, and its
step is played again.

The episode restarts from step 0 instead, and says why, when the scaffold has no state hook
or the replay diverges from the trace; the earlier attempt's files are then kept under
`attempts/`. Each resume is one line of `resumes.jsonl`, copied into episode.json.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.agent.state_slots import SHA_FIELD, STATE_DIR, STATE_FIELD, StateSlots
from harness.envs import GameEnv
from harness.envs.base import Observation
from harness.memory.metrics import MemoryTally, tool_call_routines
from harness.runs.layout import MEMORY_DIR, MESSAGES_FILE, RESUMES_FILE, STEPS_FILE, read_jsonl
from harness.runs.read import read_steps
from harness.runs.records import StepRecord
from harness.runs.salvage import drop_torn_line, earlier_resumes, restore_memory
from harness.runs.trace import StepBytes

DISCARDED_FILE, ATTEMPTS_DIR = "discarded-steps.jsonl", "attempts"


class ReplayDiverged(Exception):
    """The game, replayed on the recorded seed and actions, does not show the recorded observation."""


def invalid_action_feedback(shown: str, played_instead: str) -> str:
    """What the scaffold is told in the next Step after an answer that is no action."""
    return (f"Your answer {shown[:200]!r} is not a valid action; {played_instead!r} was played "
            f"instead. Answer with exactly one of the action names.")  # fmt: skip


@dataclass
class Recorded:
    """What an earlier attempt left: its played steps (to continue from) and the rest."""

    steps: list[StepRecord]
    lines: list[str]  # the kept steps' lines of steps.jsonl, verbatim
    discarded: list[str]  # lines after the last played step
    slots: StateSlots  # where the kept steps' large states are
    state: Any = None  # the scaffold's state after the last kept step
    has_state: bool = False  # a step recorded the scaffold's state (the scaffold has the hook)
    state_lost: str | None = None  # why the state a kept step names cannot be had


def read_recorded(directory: Path) -> Recorded | None:
    """The earlier attempt in `directory`, or None when there is nothing to continue from."""
    path = directory / STEPS_FILE
    if not path.exists():
        return None
    drop_torn_line(path)
    steps = read_steps(directory)
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = next((index for index, step in enumerate(steps) if step.action is None), len(steps))
    recorded = Recorded(steps[:kept], lines[:kept], lines[kept:], StateSlots(directory))
    for line in reversed(recorded.lines):
        raw = json.loads(line)
        if STATE_FIELD in raw:
            recorded.state, recorded.has_state = raw[STATE_FIELD], True
            break
        if raw.get(SHA_FIELD):
            recorded.has_state, recorded.state = recorded.slots.read(raw[SHA_FIELD])
            if not recorded.has_state:
                recorded.state_lost = f"the state step {raw.get('index')} names is in neither {STATE_DIR} slot"
            break
    return recorded


def replay_onto(game: GameEnv, observation: Observation, steps: list[StepRecord]) -> Observation:
    """Play the recorded actions on `game`, just reset (its first observation given); returns
    the observation after the last one. Raises ReplayDiverged at the first observation that
    differs from the trace."""
    for step in steps:
        if observation.text != step.observation:
            raise ReplayDiverged(f"the replayed observation before step {step.index} differs from the trace")
        assert step.action is not None
        observation = game.step(step.action).observation
    return observation


def keep_steps(directory: Path, recorded: Recorded) -> None:
    """Cut steps.jsonl to the kept steps (the rest appended to discarded-steps.jsonl) and make
    the memory directory what the kept steps' operations build."""
    if recorded.discarded:
        with open(directory / DISCARDED_FILE, "a", encoding="utf-8") as out:
            out.write("".join(line + "\n" for line in recorded.discarded))
    partial = directory / (STEPS_FILE + ".partial")
    partial.write_text("".join(line + "\n" for line in recorded.lines), encoding="utf-8")
    os.replace(partial, directory / STEPS_FILE)
    restore_memory(directory, recorded.steps)


def set_aside(directory: Path) -> str:
    """Move an attempt that cannot be continued under attempts/N (nothing recorded is deleted)."""
    attempts = directory / ATTEMPTS_DIR
    number = 1 + sum(1 for _ in attempts.glob("*")) if attempts.is_dir() else 1
    target = attempts / str(number)
    target.mkdir(parents=True)
    for name in (STEPS_FILE, MESSAGES_FILE, DISCARDED_FILE, MEMORY_DIR, STATE_DIR):
        if (directory / name).exists():
            shutil.move(str(directory / name), str(target / name))
    return str(target.relative_to(directory))


def log_resume(directory: Path, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Append this attempt's resume to resumes.jsonl; returns every resume of the episode."""
    with open(directory / RESUMES_FILE, "a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")
    return read_jsonl(directory / RESUMES_FILE)


@dataclass
class Tally:
    """The episode loop's running totals, rebuilt from kept steps when an episode continues."""

    times: dict[str, float] = field(default_factory=lambda: {"env": 0.0, "model": 0.0, "scaffold": 0.0, "memory": 0.0})
    tokens: dict[str, int] = field(default_factory=lambda: {"prompt": 0, "completion": 0})
    memory: MemoryTally = field(default_factory=MemoryTally)
    invalid: int = 0
    reward_total: float = 0.0
    progression: float = 0.0
    earlier_s: float = 0.0  # the kept steps' own time (an earlier attempt's start is not known)
    step_bytes: StepBytes = field(default_factory=StepBytes)


def tally_of(recorded: Recorded, default_action: str) -> tuple[Tally, str | None, float, str | None]:
    """The totals after the kept steps, and (last action, last reward, feedback) for the next Step."""
    tally = Tally()
    feedback: str | None = None
    for step, line in zip(recorded.steps, recorded.lines):
        for part in tally.times:
            tally.times[part] += getattr(step.time_s, part)
        tally.earlier_s += sum(getattr(step.time_s, part) for part in (*tally.times, "harness"))
        for call in step.llm_calls:
            tally.tokens["prompt"] += call.prompt_tokens
            tally.tokens["completion"] += call.completion_tokens
        tally.memory.add(step.memory_ops, tool_call_routines(step.llm_calls))
        tally.invalid += not step.valid
        tally.reward_total += step.reward
        tally.progression = max(tally.progression, step.progression)
        tally.step_bytes.add(len(line.encode()) + 1)
        feedback = None if step.valid else invalid_action_feedback(step.raw_action or "", default_action)
    last = recorded.steps[-1] if recorded.steps else None
    return tally, last.action if last else None, last.reward if last else 0.0, feedback


def resume_entry(recorded: Recorded, continued: bool, reason: str, started: float) -> dict[str, Any]:
    return {"from_step": len(recorded.steps) if continued else 0, "recorded_steps": len(recorded.steps),
            "continued": continued, "reason": reason, "replay_s": round(time.perf_counter() - started, 6)}  # fmt: skip


@dataclass
class Continuation:
    """How this attempt starts: the observation to play from and what it continues."""

    observation: Observation
    recorded: Recorded | None  # the kept steps when continuing, else None
    resumes: list[dict[str, Any]]


def continue_or_restart(directory: Path, game: GameEnv | None, seed: int, observation: Observation,
                        recorded: Recorded | None) -> Continuation:  # fmt: skip
    """Decide how an episode starts from what an earlier attempt left in `directory` (the game
    already reset on `seed`, or None when it failed to start: the kept steps are then kept)."""
    if recorded is None or not (recorded.steps or recorded.discarded):
        return Continuation(observation, None, earlier_resumes(directory))
    if game is None:  # the game did not start: nothing is decided, the next attempt tries again
        keep_steps(directory, recorded)
        return Continuation(observation, recorded, earlier_resumes(directory))
    started = time.perf_counter()
    continued, reason = True, "continued from its last played step"
    if recorded.steps and recorded.state_lost:
        continued, reason = False, f"restarted from step 0: {recorded.state_lost}"
    elif recorded.steps and not recorded.has_state:
        continued, reason = False, "restarted from step 0: the scaffold has no state hook (Scaffold.state)"
    elif recorded.steps:
        try:
            observation = replay_onto(game, observation, recorded.steps)
        except ReplayDiverged as diverged:
            continued, reason = False, f"restarted from step 0: {diverged}"
            observation = game.reset(seed)
    if continued:
        keep_steps(directory, recorded)
    else:
        reason += f"; the earlier attempt is kept in {set_aside(directory)}"
    resumes = log_resume(directory, resume_entry(recorded, continued, reason, started))
    return Continuation(observation, recorded if continued else None, resumes)
