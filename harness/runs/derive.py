"""What an episode's steps determine: the episode.json numbers that follow from steps.jsonl.

The scheduler's salvage writes them for an episode that died; `harness verify` recomputes them
for every episode and compares. One function, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.memory import memory_metrics
from harness.memory.metrics import tool_call_routines
from harness.memory.replay import final_memory
from harness.runs.prefix import reusable_prompt_tokens
from harness.runs.records import StepRecord

TIME_KEYS = ("env", "model", "memory", "scaffold", "harness")


def played(steps: list[StepRecord]) -> list[StepRecord]:
    """The steps whose action reached the game (an errored step has no action)."""
    return [s for s in steps if s.action is not None]


def derived_totals(steps: list[StepRecord], messages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """steps, progression, reward_total, invalid_actions, memory and tokens, from the steps and
    messages.jsonl (memory's size from the directory its recorded operations build; the tokens
    a prefix cache could serve from the calls' recorded inputs)."""
    files = final_memory(s.memory_ops for s in steps)
    calls = [call for step in steps for call in step.llm_calls]
    return {
        "steps": len(steps),
        "progression": max((s.progression for s in steps), default=0.0),
        "reward_total": sum(s.reward for s in played(steps)),
        "invalid_actions": sum(not s.valid for s in played(steps)),
        "memory": memory_metrics((s.memory_ops for s in steps), len(steps), sum(map(len, files.values())),
                                 len(files), [tool_call_routines(s.llm_calls) for s in steps]),  # fmt: skip
        "tokens": {"prompt": sum(c.prompt_tokens for c in calls),
                   "completion": sum(c.completion_tokens for c in calls),
                   "prompt_reusable": reusable_prompt_tokens(calls, messages)},  # fmt: skip
        "sampling": sampling_asked([c.sampling for c in calls]),
    }


class SamplingSeen:
    """The generation parameters calls sent, with their distinct values, added up call by call."""

    def __init__(self) -> None:
        self.values: dict[str, set[Any]] = {}

    def add(self, sampling: dict[str, Any] | None) -> None:
        for name, value in (sampling or {}).items():
            if isinstance(value, (int, float, str, bool)) or value is None:
                self.values.setdefault(name, set()).add(value)

    def asked(self) -> dict[str, list[Any]]:
        return {name: sorted(found, key=repr) for name, found in sorted(self.values.items())}


def sampling_asked(samplings: Iterable[dict[str, Any] | None]) -> dict[str, list[Any]]:
    """Each generation parameter the calls sent (temperature, max_tokens...), with its distinct
    values, sorted: what a reader checks a run's sampling against (e.g. BALROG's 1.0 and 8,192)."""
    seen = SamplingSeen()
    for sampling in samplings:
        seen.add(sampling)
    return seen.asked()


def merged_sampling(per_episode: Iterable[dict[str, list[Any]] | None]) -> dict[str, list[Any]]:
    """The run's sampling_used: every episode's parameters and values together."""
    return sampling_asked({name: value} for found in per_episode for name, values in (found or {}).items() for value in values)


def summed_times(steps: list[StepRecord]) -> dict[str, float]:
    """The episode's time_s as the sum of its steps' (what salvage can know of a dead worker)."""
    times = {key: round(sum(getattr(s.time_s, key) for s in steps), 6) for key in TIME_KEYS}
    return times | {"total": round(sum(times.values()), 6)}
