"""Rebuilding the memory directory at any step from the recorded operations."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from harness.memory.metrics import RecordedOp


def safe_relative(path: str) -> str | None:
    """A recorded path as the sandbox would have stored it ('a//./b' -> 'a/b'), or None when it
    could not have been one (absolute, '..', NUL, backslash, empty): records are claims, and a
    rebuild never writes where the sandbox would not have."""
    if not path or path.startswith("/") or "\0" in path or "\\" in path:
        return None
    parts = [part for part in path.split("/") if part not in ("", ".")]
    return "/".join(parts) if parts and ".." not in parts else None


def unsafe_paths(ops: Iterable[RecordedOp]) -> list[str]:
    """The paths of successful recorded operations that the sandbox would have refused."""
    return [str(op.path) for op in ops if op.ok and op.path is not None and op.op != "list"
            and op.path not in ("", ".") and safe_relative(op.path) is None]  # fmt: skip


def apply_ops(files: dict[str, str], ops: Iterable[RecordedOp]) -> None:
    """Apply one step's recorded operations to `files` (path -> text), as the sandbox did."""
    for op in ops:
        if not op.ok or op.path is None:
            continue
        path = safe_relative(op.path)
        if path is None:
            continue  # never applied: verify names it (unsafe_paths)
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
        apply_ops(files, ops)
        yield dict(files)


def final_memory(ops_per_step: Iterable[Iterable[RecordedOp]]) -> dict[str, str]:
    """The memory directory after the last step (no copy per step: long episodes stay cheap)."""
    files: dict[str, str] = {}
    for ops in ops_per_step:
        apply_ops(files, ops)
    return files
