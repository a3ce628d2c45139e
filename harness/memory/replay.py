"""Rebuilding the memory directory at any step from the recorded operations."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any


def memory_states(steps: Iterable[dict[str, Any]]) -> Iterator[dict[str, str]]:
    """The memory directory (path -> text) after each step, from its `memory_ops`."""
    files: dict[str, str] = {}
    for step in steps:
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
        yield dict(files)
