"""Memory metrics, defined once: per step, per episode (episode.json), and how envs aggregate.

Per step (step_memory_counts), from the step's recorded operations; only successful
operations count, refused ones are counted apart:
- writes: append, write; consultations: search, read;
- a write *after consultation* is one preceded, in the same step, by a search or a read;
- a step *consults before writing* when it consulted and every write came after that.
Per episode (memory_metrics):
- growth: characters in the memory directory at the end / steps played;
- write-to-search ratio: writes / consultations (None when nothing was consulted);
- consult-before-write: writes after consultation / writes (None when nothing was written);
- by routine: successful operations of each kind per routine of the chat call whose answer
  asked for them as tool calls ("scaffold" for the scaffold's own code), and model errors:
  refused operations a tool call asked for (bad path, missing file, unknown tool).
Across episodes (runs.results, the leaderboard, the tracks): every metric is taken per
episode, then averaged over the episodes where it is defined, as progression is: each seed
weighs the same, and a long episode cannot drown the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from harness.memory.sandbox import CONSULT_OPS, WRITE_OPS


class RecordedOp(Protocol):
    """A memory operation as recorded: the sandbox's MemoryOp, or runs.records.MemoryOpRecord."""

    @property
    def op(self) -> str: ...
    @property
    def ok(self) -> bool: ...
    @property
    def path(self) -> str | None: ...
    @property
    def text(self) -> str | None: ...
    @property
    def tool_call_id(self) -> str | None: ...


@dataclass(frozen=True)
class StepMemoryCounts:
    writes: int
    searches: int
    reads: int
    refused: int
    writes_after_consultation: int

    @property
    def consultations(self) -> int:
        return self.searches + self.reads

    @property
    def consults_before_writing(self) -> bool:
        """It consulted, and wrote nothing before consulting."""
        return self.consultations > 0 and self.writes_after_consultation == self.writes


def step_memory_counts(ops: Iterable[RecordedOp]) -> StepMemoryCounts:
    """The counts of one step's `memory_ops`, in order."""
    writes = searches = reads = refused = after = 0
    consulted = False
    for op in ops:
        if not op.ok:
            refused += 1
            continue
        kind = op.op
        if kind in CONSULT_OPS:
            consulted = True
            searches += kind == "search"
            reads += kind == "read"
        elif kind in WRITE_OPS:
            writes += 1
            after += consulted
    return StepMemoryCounts(writes, searches, reads, refused, after)


def tool_call_routines(calls: Iterable[Any]) -> dict[str, str]:
    """tool call id -> routine of the chat call that made it, for one step's calls (recorded
    dicts or LLMCall records)."""
    routines: dict[str, str] = {}
    for call in calls:
        get = call.get if isinstance(call, dict) else lambda key, c=call: getattr(c, key)
        for tool_call in get("tool_calls") or ():
            routines[str(tool_call.get("id"))] = str(get("routine"))
    return routines


class MemoryTally:
    """The `memory` block of episode.json, added up step by step (an episode's loop keeps this,
    not every step's operations: its memory stays flat however long the episode)."""

    def __init__(self) -> None:
        self.by_routine: dict[str, dict[str, int]] = {}
        self.model_errors = 0
        self.counts = StepMemoryCounts(0, 0, 0, 0, 0)

    def add(self, ops: Iterable[RecordedOp], routines: dict[str, str]) -> None:
        """One step's `memory_ops` and the routine behind each of its tool calls (tool_call_routines)."""
        ops = list(ops)
        for op in ops:
            if not op.ok:
                self.model_errors += op.tool_call_id is not None
                continue
            who = routines.get(op.tool_call_id, "model") if op.tool_call_id else "scaffold"
            kinds = self.by_routine.setdefault(who, {})
            kinds[op.op] = kinds.get(op.op, 0) + 1
        step, counts = step_memory_counts(ops), self.counts
        # field by field: dataclasses.astuple deep-copies every field, every step
        self.counts = StepMemoryCounts(counts.writes + step.writes, counts.searches + step.searches,
                                       counts.reads + step.reads, counts.refused + step.refused,
                                       counts.writes_after_consultation + step.writes_after_consultation)  # fmt: skip

    def metrics(self, steps: int, chars_final: int, files_final: int) -> dict[str, Any]:
        counts = self.counts
        consultations = counts.searches + counts.reads
        return {
            "chars_final": chars_final,
            "files_final": files_final,
            "growth_chars_per_step": chars_final / steps if steps else 0.0,
            "writes": counts.writes,
            "searches": counts.searches,
            "reads": counts.reads,
            # None when nothing was consulted: the ratio is undefined, not zero
            "write_to_search_ratio": counts.writes / consultations if consultations else None,
            "consult_before_write": counts.writes_after_consultation / counts.writes if counts.writes else None,
            "refused_ops": counts.refused,
            "ops_by_routine": self.by_routine,
            "model_errors": self.model_errors,
        }


def memory_metrics(
    ops_per_step: Iterable[Iterable[RecordedOp]],
    steps: int,
    chars_final: int,
    files_final: int,
    routines_per_step: Iterable[dict[str, str]] = (),
) -> dict[str, Any]:
    """The `memory` block of episode.json from each step's `memory_ops` (and, per step, the
    routine behind each tool call: `tool_call_routines`)."""
    tally, routines = MemoryTally(), list(routines_per_step)
    for index, ops in enumerate(ops_per_step):
        tally.add(ops, routines[index] if index < len(routines) else {})
    return tally.metrics(steps, chars_final, files_final)
