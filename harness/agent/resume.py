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
from harness.envs.base import Observation, ReplayDiverged
from harness.envs.gamelog import observation_digest
from harness.memory.metrics import MemoryTally
from harness.runs.derive import StepTotals
from harness.runs.layout import MEMORY_DIR, MESSAGES_FILE, RESUMES_FILE, STEPS_FILE, read_jsonl
from harness.runs.read import parse_record
from harness.runs.records import StepRecord
from harness.runs.salvage import drop_torn_line, earlier_resumes, write_memory
from harness.runs.trace import StepBytes

DISCARDED_FILE, ATTEMPTS_DIR = "discarded-steps.jsonl", "attempts"


def invalid_action_feedback(shown: str, played_instead: str) -> str:
    """What the scaffold is told in the next Step after an answer that is no action."""
    return (f"Your answer {shown[:200]!r} is not a valid action; {played_instead!r} was played "
            f"instead. Answer with exactly one of the action names.")  # fmt: skip


@dataclass
class Recorded:
    """What an earlier attempt left: its played steps (to continue from), added up as they were
    read, and the rest. Read a step at a time: a 100,000-step trace is never held."""

    totals: StepTotals  # the kept steps added up: memory, tokens, times (not prefix reuse: the host measures it)
    slots: StateSlots  # where the kept steps' large states are
    actions: list[str] = field(default_factory=list)  # each kept step's action
    digests: list[str] = field(default_factory=list)  # each kept step's observation (before its action), digested
    kept_bytes: int = 0  # where the kept steps end in steps.jsonl
    step_bytes: StepBytes = field(default_factory=StepBytes)
    discarded: list[bytes] = field(default_factory=list)  # the lines after the last played step, whole
    state: Any = None  # the scaffold's state after the last kept step
    has_state: bool = False  # a step recorded the scaffold's state (the scaffold has the hook)
    state_lost: str | None = None  # why the state a kept step names cannot be had

    @property
    def count(self) -> int:
        """The kept steps (the totals count them)."""
        return self.totals.steps

    @property
    def last(self) -> StepRecord | None:
        return self.totals.last


def read_recorded(directory: Path) -> Recorded | None:
    """The earlier attempt in `directory`, or None when there is nothing to continue from."""
    path = directory / STEPS_FILE
    if not path.exists():
        return None
    drop_torn_line(path)
    # the kept steps added up without the prefix trie: the host measures prefix reuse when it
    # seals the episode (runs.seal), so a resume does not rebuild it (0.2 ms a kept step)
    recorded = Recorded(StepTotals(None), StateSlots(directory))
    named: tuple[str, Any, Any] | None = None  # the last kept step's state, or the slot it names
    with open(path, "rb") as lines:
        for number, line in enumerate(lines, 1):
            step = None if recorded.discarded else _played_step(line, f"{path}:{number}")
            if step is None:  # the first step never played, and every line after it
                recorded.discarded.append(line)
                continue
            raw, record = step
            recorded.totals.add(record)
            recorded.actions.append(str(record.action))
            recorded.digests.append(observation_digest(record.observation))
            recorded.kept_bytes += len(line)
            recorded.step_bytes.add(len(line))
            if STATE_FIELD in raw:
                named = "state", raw[STATE_FIELD], raw.get("index")
            elif raw.get(SHA_FIELD):
                named = "slot", raw[SHA_FIELD], raw.get("index")
    if named is not None and named[0] == "state":
        recorded.state, recorded.has_state = named[1], True
    elif named is not None:
        recorded.has_state, recorded.state = recorded.slots.read(named[1])
        if not recorded.has_state:
            recorded.state_lost = f"the state step {named[2]} names is in neither {STATE_DIR} slot"
    return recorded


def _played_step(line: bytes, source: str) -> tuple[dict[str, Any], StepRecord] | None:
    """A line's step and its raw record, when its action reached the game (else None)."""
    try:
        raw = json.loads(line)
    except ValueError:
        return None  # not a whole record: kept aside with the lines after it
    if not isinstance(raw, dict):
        return None
    record = parse_record(StepRecord, raw, source)
    return (raw, record) if record.action is not None else None


def replay_onto(game: GameEnv, observation: Observation, recorded: Recorded) -> Observation:
    """Play the recorded actions on `game`, just reset (its first observation given); returns
    the observation after the last one. Raises ReplayDiverged at the first observation that
    differs from the trace. A game in its own process replays in one request (envs.server)."""
    replay = getattr(game, "replay", None)
    if replay is not None:
        result = replay(recorded.actions, recorded.digests)
        return observation if result is None else result.observation
    for index, (action, digest) in enumerate(zip(recorded.actions, recorded.digests)):
        if observation_digest(observation.text) != digest:
            raise ReplayDiverged(f"the replayed observation before step {index} differs from the trace")
        observation = game.step(action).observation
    return observation


def keep_steps(directory: Path, recorded: Recorded) -> None:
    """Cut steps.jsonl to the kept steps (the rest appended to discarded-steps.jsonl) and make
    the memory directory what the kept steps' operations build."""
    if recorded.discarded:
        with open(directory / DISCARDED_FILE, "ab") as out:
            out.write(b"".join(line if line.endswith(b"\n") else line + b"\n" for line in recorded.discarded))
        recorded.discarded = []  # kept aside once, whoever calls this again
    with open(directory / STEPS_FILE, "r+b") as steps:
        steps.truncate(recorded.kept_bytes)
    write_memory(directory, recorded.totals.files)


def set_aside(directory: Path) -> str:
    """Move an attempt that cannot be continued under attempts/N (nothing recorded is deleted)."""
    attempts = directory / ATTEMPTS_DIR
    number = 1 + sum(1 for _ in attempts.glob("*")) if attempts.is_dir() else 1
    target = attempts / str(number)
    target.mkdir(parents=True)
    for name in (STEPS_FILE, MESSAGES_FILE, DISCARDED_FILE, MEMORY_DIR, STATE_DIR):
        if os.path.lexists(directory / name):  # a link is moved as the link it is
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
    totals, last = recorded.totals, recorded.last
    tally = Tally(times={part: totals.times[part] for part in ("env", "model", "scaffold", "memory")},
                  tokens=dict(totals.tokens), memory=totals.memory, invalid=totals.invalid,
                  reward_total=totals.reward_total, progression=totals.progression,
                  earlier_s=sum(totals.times.values()), step_bytes=recorded.step_bytes)  # fmt: skip
    if last is None:
        return tally, None, 0.0, None
    feedback = None if last.valid else invalid_action_feedback(last.raw_action or "", default_action)
    return tally, last.action, last.reward, feedback


def resume_entry(recorded: Recorded, continued: bool, reason: str, started: float) -> dict[str, Any]:
    return {"from_step": recorded.count if continued else 0, "recorded_steps": recorded.count,
            "continued": continued, "reason": reason, "replay_s": round(time.perf_counter() - started, 6)}  # fmt: skip


@dataclass
class Continuation:
    """How this attempt starts: the observation to play from and what it continues."""

    observation: Observation
    recorded: Recorded | None  # the kept steps when continuing, else None
    resumes: list[dict[str, Any]]


def continued_from_snapshot(directory: Path, recorded: Recorded, observation: Observation, from_step: int,
                            started: float) -> Continuation:  # fmt: skip
    """The episode continues from its kept steps, its game restored from a snapshot at step
    `from_step` (envs.snapshot; the game checked the kept steps and played those after it)."""
    recorded.actions, recorded.digests = [], []
    keep_steps(directory, recorded)
    entry = resume_entry(recorded, True, f"continued from its last played step, the game from its snapshot at "
                                         f"step {from_step}", started)  # fmt: skip
    resumes = log_resume(directory, {**entry, "snapshot_step": from_step})
    return Continuation(observation, recorded, resumes)


def continue_or_restart(directory: Path, game: GameEnv | None, seed: int, observation: Observation,
                        recorded: Recorded | None, not_restored: str | None = None) -> Continuation:  # fmt: skip
    """Decide how an episode starts from what an earlier attempt left in `directory` (the game
    already reset on `seed`, or None when it failed to start: the kept steps are then kept).
    `not_restored`: why the game's snapshot was not used (said in the resume record)."""
    if recorded is None or not (recorded.count or recorded.discarded):
        return Continuation(observation, None, earlier_resumes(directory))
    if game is None:  # the game did not start: nothing is decided, the next attempt tries again
        keep_steps(directory, recorded)
        return Continuation(observation, recorded, earlier_resumes(directory))
    started = time.perf_counter()
    continued, reason = True, "continued from its last played step"
    if recorded.count and recorded.state_lost:
        continued, reason = False, f"restarted from step 0: {recorded.state_lost}"
    elif recorded.count and not recorded.has_state:
        continued, reason = False, "restarted from step 0: the scaffold has no state hook (Scaffold.state)"
    elif recorded.count:
        try:
            observation = replay_onto(game, observation, recorded)
            recorded.actions, recorded.digests = [], []  # replayed: not held for the rest of the episode
        except ReplayDiverged as diverged:
            continued, reason = False, f"restarted from step 0: {diverged}"
            observation = game.reset(seed)
    if continued:
        keep_steps(directory, recorded)
    else:
        reason += f"; the earlier attempt is kept in {set_aside(directory)}"
    if not_restored:
        reason += f"; {not_restored}"
    resumes = log_resume(directory, resume_entry(recorded, continued, reason, started))
    return Continuation(observation, recorded if continued else None, resumes)
