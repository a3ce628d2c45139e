"""`harness compare --exact`: two runs that must be the same, step by step (the regression gate).

What is deterministic is compared exactly: a policy without a model (the random floor) action
by action and score by score; a scaffold on the embedded model at temperature 0 call by call
(the portable build gives the same greedy answers on every CPU). Each episode's first
difference is named: its step and the field (the observation, a call's messages as the model
read them, its answer, the action, a memory operation, the reward or progression), so a one-line
change to a game's text or a prompt names the step it first shows in. Times, latencies and
retries measure the run and are left out (runs.fingerprint).
"""

from __future__ import annotations

from typing import Any

from harness.report.verify_episode import differences
from harness.runs.fingerprint import RESULT_FIELDS, untimed
from harness.runs.read import Run, call_input, call_tools, read_messages
from harness.runs.records import EpisodeRecord, StepRecord

DECISION_ORDER = ("index", "observation", "short_lived", "llm_calls", "memory_ops", "raw_action", "valid", "action",
                  "reward", "done", "truncated", "progression", "memory_chars")  # fmt: skip


def _step_view(step: StepRecord, messages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A step as the model and the game saw it: each call's messages and tools written out."""
    view: dict[str, Any] = untimed(step.model_dump(mode="json"))
    view["llm_calls"] = [{**untimed(call.model_dump(mode="json")), "input": call_input(call, messages),
                          "tools": call_tools(call, messages)} for call in step.llm_calls]  # fmt: skip
    view.pop("schema_version", None)
    return {key: view[key] for key in sorted(view, key=_decision_order)}


def _decision_order(key: str) -> int:
    """A step's fields in the order they happen, so that the first difference named is the first one made."""
    return DECISION_ORDER.index(key) if key in DECISION_ORDER else len(DECISION_ORDER)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def episode_difference(key: str, baseline: Run, base: EpisodeRecord, candidate: Run, cand: EpisodeRecord) -> str | None:
    """The first difference between two records of one episode, named, or None."""
    base_messages = read_messages(baseline.episode_folder(base))
    cand_messages = read_messages(candidate.episode_folder(cand))
    base_steps, cand_steps = baseline.steps(base), candidate.steps(cand)
    for index, (old, new) in enumerate(zip(base_steps, cand_steps)):
        found = differences(_step_view(old, base_messages), _step_view(new, cand_messages), "")
        if found:
            path, was, now = found[0]
            if isinstance(was, str) and isinstance(now, str):  # show where the texts part
                at = next((i for i, (a, b) in enumerate(zip(was, now)) if a != b), min(len(was), len(now)))
                start = max(0, at - 40)
                return (f"{key} step {index}: {path.lstrip('.')} differs at character {at}: baseline "
                        f"{_short(was[start:at + 80])}, candidate {_short(now[start:at + 80])}")  # fmt: skip
            return f"{key} step {index}: {path.lstrip('.')}: baseline {_short(was)}, candidate {_short(now)}"
    if len(base_steps) != len(cand_steps):
        return f"{key}: {len(base_steps)} steps in the baseline, {len(cand_steps)} in the candidate"
    for field in RESULT_FIELDS:
        if getattr(base, field) != getattr(cand, field):
            return f"{key}: episode {field} is {getattr(base, field)!r} in the baseline, {getattr(cand, field)!r} in the candidate"
    return None


def exact_differences(baseline: Run, candidate: Run) -> tuple[list[str], int]:
    """Each episode's first difference (and episodes only one run has); the steps compared."""
    base_episodes = {episode.key: episode for episode in baseline.episodes()}
    cand_episodes = {episode.key: episode for episode in candidate.episodes()}
    found = [f"{key}: only in the baseline" for key in sorted(set(base_episodes) - set(cand_episodes))]
    found += [f"{key}: only in the candidate" for key in sorted(set(cand_episodes) - set(base_episodes))]
    steps = 0
    for key in sorted(set(base_episodes) & set(cand_episodes)):
        steps += base_episodes[key].steps
        difference = episode_difference(key, baseline, base_episodes[key], candidate, cand_episodes[key])
        if difference:
            found.append(difference)
    return found, steps
