"""Checking one recorded episode: replay its game on its seed, recompute its numbers.

The game's own log (game.jsonl, 1.6 on) must match a fresh game played with its actions, event
by event, and episode.json's `game` block (the score, and whether the trace agrees with the
log, or where it first disagrees) must be what the log and the trace give (runs.seal); an
episode recorded before the log existed has its trace replayed instead (the first difference
is reported, with its step). Every other number of episode.json must match what its steps
give (runs.derive); the memory directory must be what the recorded operations build; the
status must agree with how the steps end.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from harness.envs import STANDARD_TEXT, GameEnv, InvalidActionError, TextVariant, make_env
from harness.envs.gamelog import (
    GAME_LOG_FILE,
    GameLogError,
    LoggedSession,
    observation_digest,
    read_game_session,
)
from harness.memory.replay import final_memory, unsafe_paths
from harness.report.verify_trace import trace_problems
from harness.runs.derive import derived_totals, played
from harness.runs.layout import MEMORY_DIR
from harness.runs.read import read_messages
from harness.runs.records import EnvPlanRecord, EpisodeRecord, MismatchRecord, StepRecord
from harness.runs.seal import game_record, score_of


def mismatch(episode: str, step: int | None, problem: str) -> MismatchRecord:
    return MismatchRecord(episode=episode, step=step, problem=problem)


def same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def differences(recorded: Any, expected: Any, path: str) -> list[tuple[str, Any, Any]]:
    """(dotted path, recorded, expected) of every leaf that differs; floats compare closely,
    keys only in `recorded` are ignored (a newer minor version may add keys)."""
    if isinstance(expected, dict):
        if not isinstance(recorded, dict):
            return [(path, recorded, expected)]
        return [d for key in expected for d in differences(recorded.get(key), expected[key], f"{path}.{key}")]
    if isinstance(expected, list) and isinstance(recorded, list) and len(expected) == len(recorded):
        return [d for i, (r, e) in enumerate(zip(recorded, expected)) for d in differences(r, e, f"{path}[{i}]")]
    numbers = (int, float)
    if isinstance(expected, numbers) and isinstance(recorded, numbers) and not isinstance(expected, bool) \
            and not isinstance(recorded, bool):  # fmt: skip
        return [] if same(float(recorded), float(expected)) else [(path, recorded, expected)]
    return [] if recorded == expected else [(path, recorded, expected)]


def extra_keys(recorded: Any, expected: Any, path: str) -> list[str]:
    """Dotted paths of keys in `recorded` that `expected` does not have, at any depth."""
    if not isinstance(recorded, dict) or not isinstance(expected, dict):
        return []
    return [f"{path}.{key}" for key in recorded if key not in expected] + \
        [p for key in recorded if key in expected for p in extra_keys(recorded[key], expected[key], f"{path}.{key}")]  # fmt: skip


def check_episode(folder: Path, episode: EpisodeRecord, steps: list[StepRecord], plan: EnvPlanRecord,
                  text: TextVariant = STANDARD_TEXT) -> tuple[list[MismatchRecord], int]:  # fmt: skip
    """Mismatches of one episode of the suite and the number of steps replayed."""
    key = episode.key
    problems: list[MismatchRecord] = []
    if [s.index for s in steps] != list(range(len(steps))):
        return [mismatch(key, None, "steps.jsonl is not the full sequence of steps 0..n-1 (a step is missing)")], 0
    if len(steps) > plan.max_steps or episode.max_steps != plan.max_steps:
        problems.append(mismatch(key, None, f"the episode ran {len(steps)} steps with a cap of {episode.max_steps}; "
                                            f"the suite's cap is {plan.max_steps}"))  # fmt: skip
    moves = played(steps)
    if any(s.action is None for s in steps[:-1]):
        problems.append(mismatch(key, None, "an unplayed step sits before played ones"))
    game = make_env(episode.env, episode.task, text)
    try:
        spec = game.spec
        if episode.game is None:  # recorded before the game kept its own log (1.6): the trace is replayed
            replay_problems, replayed = _replay(key, episode, moves, game)
            problems += replay_problems
            problems += _check_totals(key, episode, steps, read_messages(folder))
        else:
            game_problems, replayed, logged = _check_game(key, folder, episode, steps, game)
            problems += game_problems
            problems += _check_totals(key, episode, steps, read_messages(folder), logged)
    finally:
        game.close()
    problems += [mismatch(key, index, problem) for index, problem in trace_problems(steps, spec.actions, spec.default_action,
                                                                                    str(episode.spec.get("answers", "forgiving")))]
    problems += _check_status(key, episode, steps)
    problems += _check_memory_folder(key, folder, steps)
    return problems, replayed


def _replay(key: str, episode: EpisodeRecord, moves: list[StepRecord], game: GameEnv) -> tuple[list[MismatchRecord], int]:
    """The trace's own actions played again on `game` (runs recorded before the game log)."""
    replayed = 0
    observation = game.reset(episode.seed).text
    progression = 0.0
    for step in moves:
        if observation != step.observation:
            return [mismatch(key, step.index, "the observation differs from the replay (seed or earlier actions changed?)")], replayed
        assert step.action is not None
        result = game.step(step.action)
        replayed += 1
        progression = max(progression, result.progression)
        if not same(result.reward, step.reward):
            return [mismatch(key, step.index, f"reward {step.reward} recorded, {result.reward} on replay")], replayed
        if not same(progression, step.progression) or bool(result.done) != step.done:
            return [mismatch(key, step.index, f"progression/done {step.progression}/{step.done} recorded, "
                                              f"{progression}/{result.done} on replay")], replayed  # fmt: skip
        observation = result.observation.text
    # salvage knows only the observation before the last action, the episode loop the one after
    if moves and not episode.salvaged and episode.final_observation not in ("", observation):
        return [mismatch(key, None, "the final observation differs from the replay")], replayed
    return [], replayed


# Numbers a later minor version added: an episode written before it does not hold them.
FIELDS_SINCE: dict[tuple[str, str], tuple[int, int]] = {
    ("memory", "ops_by_routine"): (1, 2), ("memory", "model_errors"): (1, 2), ("tokens", "prompt_reusable"): (1, 4),
}  # fmt: skip


def _version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def _check_game(key: str, folder: Path, episode: EpisodeRecord, steps: list[StepRecord],
                game: GameEnv) -> tuple[list[MismatchRecord], int, dict[str, Any] | None]:  # fmt: skip
    """The game's own log replays on a fresh game, and episode.json's `game` (the score, the
    trace's agreement or its first disagreement) is what the log and the trace give."""
    try:
        session = read_game_session(folder / GAME_LOG_FILE)
    except GameLogError as error:
        return [mismatch(key, None, f"{GAME_LOG_FILE} is unreadable: {error}")], 0, None
    problems, replayed = _replay_log(key, episode, session, game) if session else ([], 0)
    expected = game_record(episode, steps, session, episode.salvaged)
    recorded = episode.game.model_dump(mode="json") if episode.game else {}
    found = expected["disagreement"]
    if found and found != recorded.get("disagreement"):  # the trace, as it is now, contradicts the game
        problems.append(mismatch(key, found["step"], f"the trace disagrees with {GAME_LOG_FILE}: {found['problem']}"))
    problems += [mismatch(key, None, f"episode.json game.{path.lstrip('.')} is {was}, {GAME_LOG_FILE} and the trace give {value}")
                 for path, was, value in differences(recorded, expected, "")]  # fmt: skip
    return problems, replayed, expected


def _replay_log(key: str, episode: EpisodeRecord, session: LoggedSession, game: GameEnv) -> tuple[list[MismatchRecord], int]:
    """Every event of the game log's last session, played again on a fresh game of its seed."""
    where = f"{key} ({GAME_LOG_FILE})"
    replayed = 0
    try:
        if observation_digest(game.reset(episode.seed).text) != session.reset.get("digest"):
            return [mismatch(where, None, "the first observation differs from the replay")], 0
        for event in session.steps:
            result = game.step(str(event["action"]))
            replayed += 1
            got = (result.reward, bool(result.done), bool(result.truncated), result.progression,
                   observation_digest(result.observation.text))  # fmt: skip
            logged = (event["reward"], event["done"], event["truncated"], event["progression"], event["digest"])
            if _version(episode.schema_version) >= (1, 9) and \
                    event.get("unlocked", []) != list(result.info.get("new_achievements") or []):
                return [mismatch(where, event["index"], f"the logged step unlocked {event.get('unlocked', [])}, the "
                                                        f"replay {list(result.info.get('new_achievements') or [])}")], replayed  # fmt: skip
            if not (same(got[0], logged[0]) and got[1:3] == logged[1:3] and same(got[3], logged[3]) and got[4] == logged[4]):
                return [mismatch(where, event["index"], f"the logged step differs from the replay (reward, done, truncated, "
                                                        f"progression: {list(logged[:4])} logged, {list(got[:4])} replayed"
                                                        f"{'' if got[4] == logged[4] else '; the observation differs'})")], replayed  # fmt: skip
    except InvalidActionError as error:
        return [mismatch(where, replayed, f"the logged action is not one of the game's: {error}")], replayed
    return [], replayed


def _check_totals(key: str, episode: EpisodeRecord, steps: list[StepRecord], messages: dict[str, dict[str, Any]],
                  game: dict[str, Any] | None = None) -> list[MismatchRecord]:  # fmt: skip
    """Every number of episode.json that its steps determine (that its version records); with
    the game's log, the score and the steps played are the log's (runs.seal)."""
    recorded = episode.model_dump(mode="json")
    expected = derived_totals(steps, messages)
    if game is not None:
        expected.update(score_of(game, steps[-1] if steps else None))
    for (block, field), since in FIELDS_SINCE.items():
        if _version(episode.schema_version) < since:
            expected[block].pop(field, None)
    if _version(episode.schema_version) < (1, 8):
        expected.pop("sampling")
    return [mismatch(key, None, f"episode.json {path.lstrip('.')} is {was}, its steps give {expected}")
            for path, was, expected in differences(recorded, expected, "")]  # fmt: skip


def _check_status(key: str, episode: EpisodeRecord, steps: list[StepRecord]) -> list[MismatchRecord]:
    last = steps[-1] if steps else None
    ended_by_game = last is not None and last.action is not None and last.done
    if episode.status == "errored":
        return [] if episode.error else [mismatch(key, None, "an errored episode records no error")]
    if episode.status == "completed" and not ended_by_game:
        return [mismatch(key, None, "episode.json says completed, but its last step did not end the game")]
    if episode.status == "truncated":
        if ended_by_game:
            return [mismatch(key, None, "episode.json says truncated, but its last step ended the game")]
        if len(steps) < episode.max_steps and not (last is not None and last.truncated):
            return [mismatch(key, None, f"a truncated episode stopped at {len(steps)} of {episode.max_steps} steps "
                                        "without the game truncating it")]  # fmt: skip
    return []


def _check_memory_folder(key: str, folder: Path, steps: list[StepRecord]) -> list[MismatchRecord]:
    unsafe = [(s.index, path) for s in steps for path in unsafe_paths(s.memory_ops)]
    if unsafe:
        return [mismatch(key, unsafe[0][0], f"a recorded memory operation writes {unsafe[0][1]!r}, outside the "
                                            f"memory folder: the sandbox refuses such paths")]  # fmt: skip
    rebuilt = final_memory(s.memory_ops for s in steps)
    root = folder / MEMORY_DIR
    links = [p for p in [root, *root.rglob("*")] if p.is_symlink()] if root.exists() or root.is_symlink() else []
    if links:
        return [mismatch(key, None, f"the memory directory holds a link ({links[0].relative_to(folder)}): the sandbox makes none")]
    on_disk = {p.relative_to(root).as_posix(): p.read_text(errors="replace") for p in root.rglob("*") if p.is_file()} if root.is_dir() else {}
    if on_disk == rebuilt:
        return []
    differing = sorted(set(on_disk) ^ set(rebuilt) | {p for p in set(on_disk) & set(rebuilt) if on_disk[p] != rebuilt[p]})
    return [mismatch(key, None, f"the memory directory differs from its recorded operations: {', '.join(differing[:5])}")]
