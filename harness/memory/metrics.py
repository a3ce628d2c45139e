"""Memory metrics, defined once: per step, per episode (episode.json), and how envs aggregate.

Per step (step_memory_counts), from the step's recorded operations; only successful
operations count, refused ones are counted apart:
- writes: append, write; consultations: search, read;
- a write *after consultation* is one preceded, in the same step, by a search or a read;
- a step *consults before writing* when it consulted and every write came after that.
Per episode (memory_metrics):
- growth: characters in the memory directory at the end / steps played;
- write-to-search ratio: writes / consultations (None when nothing was consulted);
- consult-before-write: writes after consultation / writes (None when nothing was written).
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


def memory_metrics(
    ops_per_step: Iterable[Iterable[RecordedOp]],
    steps: int,
    chars_final: int,
    files_final: int,
) -> dict[str, Any]:
    """The `memory` block of episode.json from each step's `memory_ops`."""
    counts = [step_memory_counts(ops) for ops in ops_per_step]
    writes = sum(c.writes for c in counts)
    consultations = sum(c.consultations for c in counts)
    return {
        "chars_final": chars_final,
        "files_final": files_final,
        "growth_chars_per_step": chars_final / steps if steps else 0.0,
        "writes": writes,
        "searches": sum(c.searches for c in counts),
        "reads": sum(c.reads for c in counts),
        # None when nothing was consulted: the ratio is undefined, not zero
        "write_to_search_ratio": writes / consultations if consultations else None,
        "consult_before_write": sum(c.writes_after_consultation for c in counts) / writes if writes else None,
        "refused_ops": sum(c.refused for c in counts),
    }
