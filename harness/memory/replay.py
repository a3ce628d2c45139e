"""Rebuilding the memory directory at any step from the recorded operations."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from harness.memory.metrics import RecordedOp


def _apply(files: dict[str, str], ops: Iterable[RecordedOp]) -> None:
    for op in ops:
        if not op.ok or op.path is None:
            continue
        path = "/".join(part for part in op.path.split("/") if part not in ("", "."))
        if op.op == "append":
            files[path] = files.get(path, "") + (op.text or "")
        elif op.op in ("write", "create"):
            files[path] = op.text or ""
        elif op.op == "delete":
            files.pop(path, None)


def memory_states(ops_per_step: Iterable[Iterable[RecordedOp]]) -> Iterator[dict[str, str]]:
    """The memory directory (path -> text) after each step, from each step's `memory_ops`."""
    files: dict[str, str] = {}
    for ops in ops_per_step:
        _apply(files, ops)
        yield dict(files)


def final_memory(ops_per_step: Iterable[Iterable[RecordedOp]]) -> dict[str, str]:
    """The memory directory after the last step (no copy per step: long episodes stay cheap)."""
    files: dict[str, str] = {}
    for ops in ops_per_step:
        _apply(files, ops)
    return files
