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

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.envs.gamelog import GAME_LOG_FILE, observation_digest
from harness.runs.derive import derived_totals, played
from harness.runs.jobs import EpisodeSpec, is_scored
from harness.runs.layout import EPISODE_FILE, atomic_write_json
from harness.runs.read import RecordError, read_episode, read_messages, read_steps
from harness.runs.records import EpisodeRecord, StepRecord, validated
from harness.runs.salvage import salvaged_episode

STEP_KEYS = ("index", "action", "reward", "done", "truncated", "progression", "digest")


@dataclass
class GameSession:
    """The last session of a game log: its reset and the steps played after it."""

    reset: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)


class GameLogError(ValueError):
    """A game log that is not one (a line that is no event, steps out of order)."""


def read_game_session(path: Path) -> GameSession | None:
    """The last session of the game log at `path`; None when there is no log. A torn last
    line (a game process killed mid-write) is dropped; anything else malformed raises."""
    if not path.is_file() or path.is_symlink():
        return None
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] != b"":
        lines = lines[:-1]  # torn: no final newline
    session: GameSession | None = None
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            event = json.loads(line)
        except ValueError as error:
            raise GameLogError(f"{path.name}:{number} is not JSON: {error}") from error
        kind = event.get("event") if isinstance(event, dict) else None
        if kind == "reset":
            session = GameSession(event)
        elif kind == "step" and session is not None and all(key in event for key in STEP_KEYS) \
                and event["index"] == len(session.steps):  # fmt: skip
            session.steps.append(event)
        else:
            raise GameLogError(f"{path.name}:{number} is not the next event of a game session")
    return session


def _same(a: float, b: float) -> bool:
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


def first_disagreement(episode: EpisodeRecord, steps: list[StepRecord], session: GameSession | None,
                       salvaged: bool) -> tuple[int | None, str] | None:  # fmt: skip
    """(step, problem) where the trace first disagrees with the game's log, or None."""
    moves = played(steps)
    if session is None:
        return (0, "the game's log holds no session, yet the trace records played steps") if moves else None
    reset = session.reset
    if reset.get("seed") != episode.seed or reset.get("task") != episode.task:
        return None, f"the game played {reset.get('task')} seed {reset.get('seed')}, not {episode.task} seed {episode.seed}"
    if steps and observation_digest(steps[0].observation) != reset.get("digest"):
        return 0, "the first observation differs from the one the game sent"
    progression = 0.0
    for position, (step, game) in enumerate(zip(moves, session.steps)):
        progression = max(progression, float(game["progression"]))
        problem = None
        if step.action != game["action"]:
            problem = f"the trace plays {step.action!r}, the game received {game['action']!r}"
        elif not _same(step.reward, game["reward"]):
            problem = f"the trace records reward {step.reward}, the game gave {game['reward']}"
        elif step.done != game["done"] or step.truncated != game["truncated"]:
            problem = f"the trace records done/truncated {step.done}/{step.truncated}, the game {game['done']}/{game['truncated']}"
        elif not _same(step.progression, progression):
            problem = f"the trace records progression {step.progression}, the game's is {progression}"
        else:
            following = steps[position + 1].observation if position + 1 < len(steps) else None
            if following is None and not salvaged:
                following = episode.final_observation
            if following is not None and observation_digest(following) != game["digest"]:
                problem = "the observation after this step differs from the one the game sent"
        if problem:
            return step.index, problem
    if len(session.steps) < len(moves):
        return moves[len(session.steps)].index, f"the trace records {len(moves)} played steps, the game played {len(session.steps)}"
    extra = len(session.steps) - len(moves)
    if extra > (1 if salvaged else 0):
        return len(moves), f"the game played {extra} steps the trace does not record"
    return None


def game_record(episode: EpisodeRecord, steps: list[StepRecord], session: GameSession | None,
                salvaged: bool, log_problem: str | None = None) -> dict[str, Any]:  # fmt: skip
    """episode.json's `game`: what the log says was played, and whether the trace agrees."""
    moves = played(steps)
    found = (0, log_problem) if log_problem else first_disagreement(episode, steps, session, salvaged)
    game_steps = session.steps if session else []
    counted = game_steps if found else game_steps[: len(moves)]  # a disagreement scores all the game played
    return {
        "log": GAME_LOG_FILE, "steps": len(game_steps),
        "progression": max((float(g["progression"]) for g in counted), default=0.0),
        "solved": any(bool(g["solved"]) for g in counted) if any("solved" in g for g in game_steps) else None,
        "reward_total": sum(float(g["reward"]) for g in counted),
        "agrees": found is None,
        "disagreement": {"step": found[0], "problem": found[1]} if found else None,
        "trace_progression": max((s.progression for s in steps), default=0.0),
        "unrecorded_steps": 0 if found else len(game_steps) - len(moves),
    }  # fmt: skip


def score_of(game: dict[str, Any], steps: list[StepRecord]) -> dict[str, Any]:
    """episode.json's progression, reward_total and steps, from its `game` record: the game's
    figures; steps are the trace's when it agrees (an unplayed last step included), else the
    game's."""
    unplayed_tail = 1 if steps and steps[-1].action is None else 0
    count = game["steps"] + unplayed_tail - game["unrecorded_steps"] if game["agrees"] else game["steps"]
    return {"progression": game["progression"], "reward_total": game["reward_total"], "steps": count,
            "solved": game.get("solved")}


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
    problem = None
    try:
        steps, messages = read_steps(directory), read_messages(directory)
    except (RecordError, OSError, ValueError) as error:  # written by the worker: a claim like any other
        steps, messages, problem = [], {}, f"the worker's trace is unreadable: {error}"
    record = episode.model_dump(mode="json")
    record.update({"env": spec.env, "task": spec.task, "seed": spec.seed, "max_steps": spec.max_steps, "salvaged": salvaged})
    record.update(derived_totals(steps, messages))
    try:
        session = read_game_session(directory / GAME_LOG_FILE)
    except GameLogError as error:
        session, problem = None, problem or f"the game's log is unreadable: {error}"
    game = game_record(EpisodeRecord.model_validate(record), steps, session, salvaged, problem)
    record["game"] = game
    record.update(score_of(game, steps))
    if not game["agrees"]:
        where = "" if game["disagreement"]["step"] is None else f" at step {game['disagreement']['step']}"
        record.update({"status": "errored", "error_kind": "scaffold",
                       "error": f"the worker's trace disagrees with the game's own log{where}: "
                                f"{game['disagreement']['problem']} (scored at what the game played)"})  # fmt: skip
    sealed = validated(EpisodeRecord, record)
    atomic_write_json(directory / EPISODE_FILE, sealed)
    return sealed
