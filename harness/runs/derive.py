"""What an episode's steps determine: the episode.json numbers that follow from steps.jsonl.

The scheduler's salvage writes them for an episode that died; `harness verify` recomputes them
for every episode and compares. One fold (StepTotals), so the two cannot drift apart; it takes
the steps one at a time, so a 100,000-step episode is sealed without holding its trace.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from harness.memory.metrics import MemoryTally, tool_call_routines
from harness.memory.replay import apply_ops
from harness.runs.prefix import PrefixCache, prompt_units
from harness.runs.records import StepRecord

TIME_KEYS = ("env", "model", "memory", "scaffold", "harness")


class Messages(Protocol):
    """messages.jsonl by id: read_messages' dict, or a MessageIndex for a long episode."""

    def get(self, message_id: str, /) -> dict[str, Any] | None: ...


def played(steps: list[StepRecord]) -> list[StepRecord]:
    """The steps whose action reached the game (an errored step has no action)."""
    return [s for s in steps if s.action is not None]


def derived_totals(steps: Iterable[StepRecord], messages: Messages) -> dict[str, Any]:
    """steps, progression, reward_total, invalid_actions, memory and tokens, from the steps and
    messages.jsonl (memory's size from the directory its recorded operations build; the tokens
    a prefix cache could serve from the calls' recorded inputs)."""
    totals = StepTotals(messages)
    for step in steps:
        totals.add(step)
    return totals.derived()


class StepTotals:
    """What an episode's steps determine, added up step by step in the trace's order."""

    def __init__(self, messages: Messages | None) -> None:
        """`messages`: the episode's messages, to measure prefix reuse on; None leaves it out
        (prompt_reusable None: a worker's own tally, which the host's seal replaces)."""
        self.steps = 0
        self.progression = 0.0  # the first step's, then the highest
        self.reward_total: float = 0
        self.invalid = 0
        self.played = 0  # steps whose action reached the game
        self.memory = MemoryTally()
        self.files: dict[str, str] = {}  # the memory directory the recorded operations build
        self.tokens = {"prompt": 0, "completion": 0}
        self.prefix = None if messages is None else PrefixCache(lambda unit: messages.get(unit) or {})
        self.reusable = 0.0
        self.sampling = SamplingSeen()
        self.times: dict[str, float] = dict.fromkeys(TIME_KEYS, 0)
        self.last: StepRecord | None = None

    def add(self, step: StepRecord) -> None:
        self.steps += 1
        self.progression = step.progression if self.steps == 1 else max(self.progression, step.progression)
        if step.action is not None:
            self.played += 1
            self.reward_total += step.reward
            self.invalid += not step.valid
        apply_ops(self.files, step.memory_ops)
        self.memory.add(step.memory_ops, tool_call_routines(step.llm_calls))
        for call in step.llm_calls:
            self.tokens["prompt"] += call.prompt_tokens
            self.tokens["completion"] += call.completion_tokens
            if self.prefix is not None and call.input.get("messages"):
                self.reusable += call.prompt_tokens * self.prefix.add(prompt_units(call.tools, call.input["messages"]))
            self.sampling.add(call.sampling)
        for key in TIME_KEYS:
            self.times[key] += getattr(step.time_s, key)
        self.last = step

    def derived(self) -> dict[str, Any]:
        """The episode.json numbers (derived_totals)."""
        return {
            "steps": self.steps,
            "progression": self.progression,
            "reward_total": self.reward_total,
            "invalid_actions": self.invalid,
            "memory": self.memory.metrics(self.steps, sum(map(len, self.files.values())), len(self.files)),
            "tokens": {**self.tokens, "prompt_reusable": None if self.prefix is None else round(self.reusable)},
            "sampling": self.sampling.asked(),
        }

    def summed_times(self) -> dict[str, float]:
        """The episode's time_s as the sum of its steps' (what salvage can know of a dead worker)."""
        times = {key: round(value, 6) for key, value in self.times.items()}
        return times | {"total": round(sum(times.values()), 6)}


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
