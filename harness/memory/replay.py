"""Rebuilding the memory directory at any step from the recorded operations."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any


def _apply(files: dict[str, str], step: dict[str, Any]) -> None:
    for op in step.get("memory_ops", []):
        if not op["ok"] or op.get("path") is None:
            continue
        path = "/".join(part for part in op["path"].split("/") if part not in ("", "."))
        if op["op"] == "append":
            files[path] = files.get(path, "") + op.get("text", "")
        elif op["op"] == "write":
            files[path] = op.get("text", "")
        elif op["op"] == "delete":
            files.pop(path, None)


def memory_states(steps: Iterable[dict[str, Any]]) -> Iterator[dict[str, str]]:
    """The memory directory (path -> text) after each step, from its `memory_ops`."""
    files: dict[str, str] = {}
    for step in steps:
        _apply(files, step)
        yield dict(files)


def final_memory(steps: Iterable[dict[str, Any]]) -> dict[str, str]:
    """The memory directory after the last step (no copy per step: long episodes stay cheap)."""
    files: dict[str, str] = {}
    for step in steps:
        _apply(files, step)
    return files
