"""`harness verify RUN`: replay every recorded episode on its seed and recompute every score.

Each episode's recorded actions are played again in a fresh game on the recorded seed; every
observation, reward, done flag and progression must match the trace, the episode's totals
must match episode.json, the memory directory must match what its recorded operations build,
and results.json must match the episodes. The first difference of each episode is reported
with its step. The verdict is written to verification.json (leaderboard rows cite it).
"""

from __future__ import annotations

import datetime
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.envs import make_env
from harness.memory.replay import final_memory
from harness.runs.layout import (
    EPISODE_FILE,
    MEMORY_DIR,
    STEPS_FILE,
    RunDir,
    atomic_write_json,
    read_json,
    read_jsonl,
)
from harness.runs.read import read_run
from harness.runs.records import EpisodeRecord
from harness.runs.results import env_summary

VERIFICATION_FILE = "verification.json"


@dataclass
class Mismatch:
    episode: str
    step: int | None
    problem: str


@dataclass
class Verification:
    run_id: str
    verified: bool
    episodes_checked: int
    steps_replayed: int
    mismatches: list[Mismatch] = field(default_factory=list)
    checked_at: str = ""

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "mismatches": [asdict(m) for m in self.mismatches]}


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def verify_episode(folder: Path, planned: dict[str, Any]) -> tuple[list[Mismatch], int]:
    """Mismatches of one episode (first replay difference only) and the steps replayed."""
    episode = read_json(folder / EPISODE_FILE)
    key = f"{episode['env']}/{episode['task']}/{episode['seed']}"
    problems: list[Mismatch] = []
    plan = planned.get(episode["env"])
    if plan is None or episode["task"] not in plan["tasks"] or episode["seed"] not in plan["seeds"]:
        return [Mismatch(key, None, "this episode is not in the run's suite (env, task or seed changed)")], 0
    if (folder.parent.parent.name, folder.parent.name, folder.name) != (episode["env"], episode["task"], str(episode["seed"])):
        problems.append(Mismatch(key, None, f"episode.json names another episode than its folder {folder}"))
    steps = read_jsonl(folder / STEPS_FILE)
    if [s["index"] for s in steps] != list(range(len(steps))):
        problems.append(Mismatch(key, None, "steps.jsonl is not the full sequence of steps 0..n-1 (a step is missing)"))
        return problems, 0
    if len(steps) != episode["steps"]:
        problems.append(Mismatch(key, None, f"episode.json says {episode['steps']} steps, steps.jsonl holds {len(steps)}"))
    if len(steps) > plan["max_steps"]:
        problems.append(Mismatch(key, None, f"{len(steps)} steps exceed the suite's cap of {plan['max_steps']}"))
    played = [s for s in steps if s.get("action") is not None]
    if any(s.get("action") is None for s in steps[: len(played)]):
        problems.append(Mismatch(key, None, "an unplayed step sits before played ones"))
    game = make_env(episode["env"], episode["task"])
    replayed = 0
    try:
        observation = game.reset(int(episode["seed"])).text
        progression = reward_total = 0.0
        for step in played:
            index = step["index"]
            if observation != step["observation"]:
                problems.append(Mismatch(key, index, "the observation differs from the replay (seed or earlier actions changed?)"))
                break
            result = game.step(step["action"])
            replayed += 1
            progression = max(progression, result.progression)
            reward_total += result.reward
            if not _same(result.reward, step["reward"]):
                problems.append(Mismatch(key, index, f"reward {step['reward']} recorded, {result.reward} on replay"))
                break
            if not _same(progression, step["progression"]) or bool(result.done) != bool(step["done"]):
                problems.append(Mismatch(key, index, f"progression/done {step['progression']}/{step['done']} recorded, "
                                                     f"{progression}/{result.done} on replay"))  # fmt: skip
                break
            observation = result.observation.text
        else:
            if not _same(progression, episode["progression"]):
                problems.append(Mismatch(key, None, f"episode.json progression {episode['progression']}, replay gives {progression}"))
            if not _same(reward_total, episode["reward_total"]):
                problems.append(Mismatch(key, None, f"episode.json reward_total {episode['reward_total']}, replay gives {reward_total}"))
            if played and episode.get("final_observation") not in (None, observation):
                problems.append(Mismatch(key, None, "the final observation differs from the replay"))
    finally:
        game.close()
    invalid = sum(not s.get("valid", True) and s.get("action") is not None for s in steps)
    if invalid != episode["invalid_actions"]:
        problems.append(Mismatch(key, None, f"episode.json counts {episode['invalid_actions']} invalid actions, steps show {invalid}"))
    problems += _verify_memory(key, folder, steps, episode)
    return problems, replayed


def _verify_memory(key: str, folder: Path, steps: list[dict[str, Any]], episode: dict[str, Any]) -> list[Mismatch]:
    rebuilt = final_memory(steps)
    root = folder / MEMORY_DIR
    on_disk = {p.relative_to(root).as_posix(): p.read_text(errors="replace") for p in root.rglob("*") if p.is_file()} if root.is_dir() else {}
    problems = []
    if on_disk != rebuilt:
        differing = sorted(set(on_disk) ^ set(rebuilt) | {p for p in set(on_disk) & set(rebuilt) if on_disk[p] != rebuilt[p]})
        problems.append(Mismatch(key, None, f"the memory directory differs from its recorded operations: {', '.join(differing[:5])}"))
    if sum(map(len, rebuilt.values())) != episode["memory"]["chars_final"]:
        problems.append(Mismatch(key, None, "episode.json memory.chars_final does not match the memory directory"))
    return problems


def verify_run(run: RunDir, write: bool = True) -> Verification:
    info = run.read_run()
    planned = info["suite"]["envs"]
    report = Verification(run.run_id, True, 0, 0)
    for folder in run.episode_dirs():
        if not (folder / EPISODE_FILE).exists():
            report.mismatches.append(Mismatch(str(folder.relative_to(run.root)), None, "episode has no episode.json (incomplete)"))
            continue
        problems, replayed = verify_episode(folder, planned)
        report.mismatches += problems
        report.episodes_checked += 1
        report.steps_replayed += replayed
    report.mismatches += _verify_results(run)
    report.verified = not report.mismatches and report.episodes_checked > 0
    report.checked_at = datetime.datetime.now().isoformat(timespec="seconds")
    if write:
        atomic_write_json(run.root / VERIFICATION_FILE, report.to_json())
    return report


def _verify_results(run: RunDir) -> list[Mismatch]:
    if not run.results_file.exists():
        return [Mismatch("results.json", None, "results.json is missing")]
    stored = read_json(run.results_file)
    by_env: dict[str, list[EpisodeRecord]] = {}
    for episode in read_run(run.root).episodes():
        by_env.setdefault(episode.env, []).append(episode)
    problems = []
    for env, episodes in by_env.items():
        expected = env_summary(episodes)["progression_mean"]
        recorded = stored.get("envs", {}).get(env, {}).get("progression_mean")
        if expected is not None and (recorded is None or not _same(expected, recorded)):
            problems.append(Mismatch(f"results.json/{env}", None, f"progression_mean {recorded} recorded, episodes give {expected}"))
    return problems
