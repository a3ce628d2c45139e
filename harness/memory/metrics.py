"""Memory metrics of an episode, computed from its recorded operations.

- growth: characters in the memory directory at the end / steps played
- write-to-search ratio: writes (append, write) / consultations (search, read)
- consult-before-write: share of writes preceded, in the same step, by a search or a read
Only successful operations count; refused ones are counted apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from harness.memory.sandbox import CONSULT_OPS, WRITE_OPS


def memory_metrics(
    ops_per_step: Iterable[Iterable[Mapping[str, Any]]],
    steps: int,
    chars_final: int,
    files_final: int,
) -> dict[str, Any]:
    """The `memory` block of episode.json from each step's `memory_ops`."""
    writes = searches = reads = refused = consulted_writes = 0
    for step_ops in ops_per_step:
        consulted = False
        for op in step_ops:
            if not op["ok"]:
                refused += 1
                continue
            kind = op["op"]
            if kind in CONSULT_OPS:
                consulted = True
                searches += kind == "search"
                reads += kind == "read"
            elif kind in WRITE_OPS:
                writes += 1
                consulted_writes += consulted
    consultations = searches + reads
    return {
        "chars_final": chars_final,
        "files_final": files_final,
        "growth_chars_per_step": chars_final / steps if steps else 0.0,
        "writes": writes,
        "searches": searches,
        "reads": reads,
        # null when nothing was consulted: the ratio is undefined, not zero
        "write_to_search_ratio": writes / consultations if consultations else None,
        "consult_before_write": consulted_writes / writes if writes else None,
        "refused_ops": refused,
    }
