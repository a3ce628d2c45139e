"""Sealing an episode: its score from the game's own log, the worker's trace reconciled with it.

The worker runs the scaffold, so everything it writes is a claim. The game runs in another
process (envs.game_process, or the env container) and keeps its own log (envs.gamelog). When
the worker has ended, the scheduler, on the host, seals the episode here:
- every number the trace determines (memory, tokens, invalid actions) is computed again from
  the trace (runs.derive), whatever the worker's episode.json says;
- the score (progression, reward, steps played) is the game log's;
- the trace must agree with the log step by step: the first observation, then for each played
  step the action, the reward, the flags, the progression and the observation that followed.
  A disagreement ends the episode as the scaffold's error, named, scored at what the game
  really played (every step of its log).
An episode that ended on an infrastructure failure is not scored and is left as it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.envs.gamelog import (
    GAME_LOG_FILE,
    GameLogError,
    LoggedSession,
    observation_digest,
    read_game_session,
)
from harness.runs.derive import StepTotals
from harness.runs.jobs import EpisodeSpec, is_scored
from harness.runs.layout import EPISODE_FILE, atomic_write_json
from harness.runs.read import MessageIndex, RecordError, iter_steps, read_episode
from harness.runs.records import EpisodeRecord, StepRecord, validated
from harness.runs.salvage import salvaged_episode


def _same(a: float, b: float) -> bool:
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


class TraceCheck:
    """Whether the trace agrees with the game's log, the trace read a step at a time in its
    order (a 100,000-step trace is never held): add() each step, then disagreement()."""

    def __init__(self, episode: EpisodeRecord, session: LoggedSession | None, salvaged: bool) -> None:
        self.episode, self.session, self.salvaged = episode, session, salvaged
        self.moves = 0  # played steps so far
        self.trace_progression: float | None = None
        self.found: tuple[int | None, str] | None = None
        self._first = True
        self._pending: tuple[StepRecord, dict[str, Any]] | None = None  # a played step waiting for the observation after it
        self._beyond: int | None = None  # the first played step the game did not play
        self._progression = 0.0
        reset = session.reset if session else {}
        if session is not None and (reset.get("seed") != episode.seed or reset.get("task") != episode.task):
            self.found = None, f"the game played {reset.get('task')} seed {reset.get('seed')}, not {episode.task} seed {episode.seed}"

    def add(self, step: StepRecord) -> None:
        progression = step.progression
        self.trace_progression = progression if self.trace_progression is None else max(self.trace_progression, progression)
        first, self._first = self._first, False
        if step.action is not None:
            self.moves += 1
        if self.found is not None or self.session is None:
            return
        if first and observation_digest(step.observation) != self.session.reset.get("digest"):
            self.found = 0, "the first observation differs from the one the game sent"
            return
        if self._pending is not None:
            self._follow(step.observation)
            if self.found is not None:
                return
        if step.action is None:
            return
        if self.moves > len(self.session.steps):
            self._beyond = step.index if self._beyond is None else self._beyond
            return
        game = self.session.steps[self.moves - 1]
        self._progression = max(self._progression, float(game["progression"]))
        problem = None
        if step.action != game["action"]:
            problem = f"the trace plays {step.action!r}, the game received {game['action']!r}"
        elif not _same(step.reward, game["reward"]):
            problem = f"the trace records reward {step.reward}, the game gave {game['reward']}"
        elif step.done != game["done"] or step.truncated != game["truncated"]:
            problem = f"the trace records done/truncated {step.done}/{step.truncated}, the game {game['done']}/{game['truncated']}"
        elif not _same(step.progression, self._progression):
            problem = f"the trace records progression {step.progression}, the game's is {self._progression}"
        if problem:
            self.found = step.index, problem
        else:
            self._pending = step, game

    def _follow(self, observation: str | None) -> None:
        step, game = self._pending  # type: ignore[misc]  # called only with a pending step
        self._pending = None
        if observation is not None and observation_digest(observation) != game["digest"]:
            self.found = step.index, "the observation after this step differs from the one the game sent"

    def disagreement(self) -> tuple[int | None, str] | None:
        """(step, problem) where the trace first disagrees with the game's log, or None."""
        if self.session is None:
            return (0, "the game's log holds no session, yet the trace records played steps") if self.moves else None
        if self.found is None and self._pending is not None:
            self._follow(None if self.salvaged else self.episode.final_observation)
        if self.found is not None:
            return self.found
        if self._beyond is not None:
            return self._beyond, f"the trace records {self.moves} played steps, the game played {len(self.session.steps)}"
        extra = len(self.session.steps) - self.moves
        if extra > (1 if self.salvaged else 0):
            return self.moves, f"the game played {extra} steps the trace does not record"
        return None


def game_record(episode: EpisodeRecord, steps: Iterable[StepRecord], session: LoggedSession | None,
                salvaged: bool, log_problem: str | None = None) -> dict[str, Any]:  # fmt: skip
    """episode.json's `game`: what the log says was played, and whether the trace agrees."""
    check = TraceCheck(episode, session, salvaged)
    for step in steps:
        check.add(step)
    return checked_game_record(check, log_problem)


def checked_game_record(check: TraceCheck, log_problem: str | None = None) -> dict[str, Any]:
    """game_record from a TraceCheck that has read every step."""
    session = check.session
    found = (0, log_problem) if log_problem else check.disagreement()
    game_steps = session.steps if session else []
    counted = game_steps if found else game_steps[: check.moves]  # a disagreement scores all the game played
    return {
        "log": GAME_LOG_FILE, "steps": len(game_steps),
        "progression": max((float(g["progression"]) for g in counted), default=0.0),
        "solved": any(bool(g["solved"]) for g in counted) if any("solved" in g for g in game_steps) else None,
        "reward_total": sum(float(g["reward"]) for g in counted),
        "agrees": found is None,
        "disagreement": {"step": found[0], "problem": found[1]} if found else None,
        "trace_progression": 0.0 if check.trace_progression is None else check.trace_progression,
        "unrecorded_steps": 0 if found else len(game_steps) - check.moves,
    }  # fmt: skip


def score_of(game: dict[str, Any], last: StepRecord | None) -> dict[str, Any]:
    """episode.json's progression, reward_total and steps, from its `game` record and the
    trace's last step: the game's figures; steps are the trace's when it agrees (an unplayed
    last step included), else the game's."""
    unplayed_tail = 1 if last is not None and last.action is None else 0
    count = game["steps"] + unplayed_tail - game["unrecorded_steps"] if game["agrees"] else game["steps"]
    return {"progression": game["progression"], "reward_total": game["reward_total"], "steps": count,
            "solved": game.get("solved")}


def ended_as(last: StepRecord | None, steps: int, max_steps: int) -> str | None:
    """How an episode whose trace agrees with the game ended: completed (its last step ended the
    game), truncated (by the game, or at its last allowed step), or None (it just stopped)."""
    if last is not None and last.action is not None and last.done:
        return "completed"
    if steps >= max_steps or (last is not None and last.truncated):
        return "truncated"
    return None


def seal_episode(spec: EpisodeSpec, salvaged: bool) -> dict[str, Any] | None:
    """Rewrite the episode.json of `spec` as the host computes it; returns it (None: unscored,
    left alone). `salvaged`: the scheduler wrote it (the worker died or was ended)."""
    directory = Path(spec.episode_dir)
    try:
        episode = read_episode(directory)
    except (RecordError, OSError, ValueError) as error:
        record = salvaged_episode(spec, "scaffold", f"the worker left an unreadable episode.json: {error}")
        episode, salvaged = EpisodeRecord.model_validate(record), True
    if not is_scored(episode):
        return None
    salvaged = salvaged or episode.salvaged  # the loop's own salvage (a scaffold that failed to load)
    record = episode.model_dump(mode="json")
    record.update({"env": spec.env, "task": spec.task, "seed": spec.seed, "max_steps": spec.max_steps, "salvaged": salvaged})
    log_problem = None
    try:
        session = read_game_session(directory / GAME_LOG_FILE)
    except GameLogError as error:
        session, log_problem = None, f"the game's log is unreadable: {error}"
    claimed = EpisodeRecord.model_validate(record)
    totals, check, problem = _read_trace(directory, claimed, session, salvaged)
    record.update(totals.derived())
    game = checked_game_record(check, problem or log_problem)
    record["game"] = game
    record.update(score_of(game, totals.last))
    if game["agrees"] and record["status"] != "errored":
        # how the episode ended is the game's too: the trace's last step agrees with its log
        ended = ended_as(totals.last, totals.steps, spec.max_steps)
        if ended is None:
            record.update({"status": "errored", "error_kind": "scaffold",
                           "error": f"the worker ended the episode after {totals.steps} of {spec.max_steps} steps "
                                    f"without an error, and the game did not end it"})  # fmt: skip
        else:
            record["status"] = ended
    if not game["agrees"]:
        where = "" if game["disagreement"]["step"] is None else f" at step {game['disagreement']['step']}"
        record.update({"status": "errored", "error_kind": "scaffold",
                       "error": f"the worker's trace disagrees with the game's own log{where}: "
                                f"{game['disagreement']['problem']} (scored at what the game played)"})  # fmt: skip
    sealed = validated(EpisodeRecord, record)
    atomic_write_json(directory / EPISODE_FILE, sealed)
    return sealed


def _read_trace(directory: Path, episode: EpisodeRecord, session: LoggedSession | None,
                salvaged: bool) -> tuple[StepTotals, TraceCheck, str | None]:  # fmt: skip
    """The trace's totals and its agreement with the game's log, in one pass over its steps; an
    unreadable trace counts as empty, with the problem named."""
    try:
        with MessageIndex(directory) as messages:
            totals, check = StepTotals(messages), TraceCheck(episode, session, salvaged)
            for step in iter_steps(directory):
                totals.add(step)
                check.add(step)
            return totals, check, None
    except (RecordError, OSError, ValueError) as error:  # written by the worker: a claim like any other
        return StepTotals({}), TraceCheck(episode, session, salvaged), f"the worker's trace is unreadable: {error}"
