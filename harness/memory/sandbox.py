"""The agent's memory: one sandboxed directory of text files, every operation recorded.

Paths are relative to the memory root. A path that would leave it (`..`, an absolute path,
a symlink anywhere on the way) is refused with MemoryAccessError; sizes are bounded (chars
per file, chars in total, number of files). Refusals are recorded like any other operation,
so the metrics and the trace show attempts as well as successes.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any


class MemoryAccessError(PermissionError):
    """A memory path that escapes the memory directory (or is otherwise not allowed)."""


class MemoryLimitError(OSError):
    """A memory operation that would exceed a size limit."""


@dataclass(frozen=True)
class MemoryLimits:
    max_file_chars: int = 200_000
    max_total_chars: int = 1_000_000
    max_files: int = 500
    max_path_chars: int = 200
    max_search_results: int = 50


# Aliases: inside Memory, the name `list` is the `list` operation of the scaffold API.
Paths = list[str]
Ops = list["MemoryOp"]
ToolList = list[dict[str, Any]]

WRITE_OPS = ("append", "write", "create")
CONSULT_OPS = ("search", "read")


@dataclass
class MemoryOp:
    """One recorded operation (the `memory_ops` entries of steps.jsonl)."""

    op: str
    path: str | None
    pattern: str | None
    chars_written: int
    chars_read: int
    ok: bool
    error: str | None
    text: str | None = None  # what a successful append/write wrote: the directory can be rebuilt
    tool_call_id: str | None = None  # the model's tool call that asked for it (None: the scaffold's own code)

    def to_json(self) -> dict[str, Any]:
        record = {"op": self.op, "path": self.path, "pattern": self.pattern,
                  "chars_written": self.chars_written, "chars_read": self.chars_read,
                  "ok": self.ok, "error": self.error}  # fmt: skip
        if self.text is not None:
            record["text"] = self.text
        if self.tool_call_id is not None:
            record["tool_call_id"] = self.tool_call_id
        return record


_REGEX_SYNTAX = frozenset(".^$*+?{}[]\\|()")


def _compiled(pattern: str) -> tuple[re.Pattern[str], bool]:
    """`pattern` compiled case-insensitively (as plain text if it is no valid regular
    expression), and whether it is one line of plain text: it then matches its own characters
    only, never across a line break."""
    one_line = pattern.splitlines() == [pattern]  # no line break of any kind; not empty
    try:
        return re.compile(pattern, re.IGNORECASE), one_line and not (_REGEX_SYNTAX & set(pattern))
    except re.error:
        return re.compile(re.escape(pattern), re.IGNORECASE), one_line


def _matching_lines(matcher: re.Pattern[str], one_line_text: bool, text: str) -> Iterator[tuple[int, str]]:
    """(number from 1, line) of each line of `text` (str.splitlines) where `matcher` finds a match.
    Plain text that holds no line break cannot match across lines, so it is looked for in the
    whole text at once, in C, rather than line by line in Python (a search of a growing memory
    was the seed agent's largest memory cost); a regular expression is tried on each line."""
    lines = text.splitlines()
    if not one_line_text:
        yield from ((number, line) for number, line in enumerate(lines, 1) if matcher.search(line))
        return
    joined = "\n".join(lines)  # one "\n" between lines, none inside one
    position, number, counted = 0, 1, 0
    while (match := matcher.search(joined, position)) is not None:
        start = match.start()
        number += joined.count("\n", counted, start)
        counted = start
        line_start, line_end = joined.rfind("\n", 0, start) + 1, joined.find("\n", start)
        yield number, joined[line_start:] if line_end < 0 else joined[line_start:line_end]
        if line_end < 0:
            return
        position = line_end + 1


class Memory:
    """The scaffold's `self.memory`: list/read/search/append/write/delete on its directory."""

    def __init__(self, root: str | os.PathLike[str], limits: MemoryLimits | None = None) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.limits = limits or MemoryLimits()
        self.ops: Ops = []  # operations since the last `take_ops()`
        self.elapsed_s = 0.0  # time spent in memory operations (for the episode's time split)
        # Wraps each operation with its record; the episode loop shields them from its step
        # timer so that the directory and the recorded operations never get out of step.
        self.guard: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext
        self.tool_call_id: str | None = None  # set while a model's tool call is carried out
        self._sizes: dict[str, int] = {  # relative path -> chars, kept in step with the disk
            str(path.relative_to(self.root)): len(path.read_text(errors="replace"))
            for path in self.root.rglob("*") if path.is_file() and not path.is_symlink()
        }  # fmt: skip

    # -- public operations ------------------------------------------------------------------
    def list(self, dir: str = "") -> Paths:  # noqa: A002  (the scaffold API's name)
        """Files under `dir` (relative paths, sorted)."""
        def run() -> Paths:
            prefix = self._normalize(dir, allow_root=True)
            return sorted(p for p in self._sizes if not prefix or p.startswith(prefix + "/"))
        return self._record("list", dir, None, run, read=lambda out: sum(map(len, out)))

    def read(self, path: str) -> str:
        """The whole text of a file."""
        def run() -> str:
            return self._existing(path).read_text()
        return self._record("read", path, None, run, read=len)

    def search(self, pattern: str, path: str = "") -> Paths:
        """Lines matching `pattern` (a regular expression, or plain text if it is not one),
        case-insensitive, as 'file:line: text', in files under `path` (a file or a folder)."""
        def run() -> Paths:
            matcher, one_line_text = _compiled(pattern)
            scope = self._normalize(path, allow_root=True)
            files = [p for p in self._sizes if not scope or p == scope or p.startswith(scope + "/")]
            hits: Paths = []
            for relative in sorted(files):
                for number, line in _matching_lines(matcher, one_line_text, (self.root / relative).read_text()):
                    hits.append(f"{relative}:{number}: {line}")
                    if len(hits) >= self.limits.max_search_results:
                        return hits
            return hits
        return self._record("search", path or None, pattern, run, read=lambda out: sum(map(len, out)))

    def append(self, path: str, text: str) -> None:
        """Add `text` at the end of a file (created if missing)."""
        def run() -> None:
            target, relative = self._writable(path)
            self._check_size(relative, self._sizes.get(relative, 0) + len(text))
            target.parent.mkdir(parents=True, exist_ok=True)  # only once every check passed
            with open(target, "a", encoding="utf-8") as handle:
                handle.write(text)
            self._sizes[relative] = self._sizes.get(relative, 0) + len(text)
        self._record("append", path, None, run, written=len(text), text=text)

    def write(self, path: str, text: str) -> None:
        """Replace a file's whole text (created if missing)."""
        def run() -> None:
            target, relative = self._writable(path)
            self._check_size(relative, len(text))
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(target.name + ".tmp-write")
            temporary.write_text(text, encoding="utf-8")
            os.replace(temporary, target)
            self._sizes[relative] = len(text)
        self._record("write", path, None, run, written=len(text), text=text)

    def create(self, path: str, text: str) -> None:
        """A new file holding `text` (refused if the file exists)."""
        def run() -> None:
            target, relative = self._writable(path)
            if relative in self._sizes:
                raise FileExistsError(f"memory file {relative!r} exists; append to it or rewrite it")
            self._check_size(relative, len(text))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            self._sizes[relative] = len(text)
        self._record("create", path, None, run, written=len(text), text=text)

    def delete(self, path: str) -> None:
        """Remove a file."""
        def run() -> None:
            self._existing(path).unlink()
            del self._sizes[self._normalize(path)]
        self._record("delete", path, None, run)

    # -- as the model's tools --------------------------------------------------------------
    def tools(self, *names: str, max_text_chars: int | None = None) -> ToolList:
        """OpenAI-format definitions of the memory operations `names` (default: all of list,
        read, search, append, create, rewrite, delete), to pass as `chat(..., tools=...)`;
        `max_text_chars` bounds the text one call writes or searches for."""
        from harness.memory.tools import tool_definitions

        return tool_definitions(names, max_text_chars)

    def call_tool(self, tool_call: dict[str, Any]) -> dict[str, Any]:
        """Carry out one tool call of the model's answer on this memory; returns the `tool`
        message to send back. A bad call (unknown tool, bad arguments, a path outside the
        memory, a missing file, a limit) is answered with an error and recorded, never raised."""
        from harness.memory.tools import call_tool

        return call_tool(self, tool_call)

    # -- for the harness -------------------------------------------------------------------
    @property
    def total_chars(self) -> int:
        return sum(self._sizes.values())

    @property
    def file_count(self) -> int:
        return len(self._sizes)

    def take_ops(self) -> Ops:
        """The operations recorded since the last call (the episode loop calls it per step)."""
        ops, self.ops = self.ops, []
        return ops

    # -- rules --------------------------------------------------------------------------------
    def _normalize(self, path: str, allow_root: bool = False) -> str:
        """The canonical relative path, or MemoryAccessError if it is not a safe one."""
        if not isinstance(path, str):
            raise MemoryAccessError(f"memory paths are strings, got {type(path).__name__}")
        if "\0" in path or "\\" in path:
            raise MemoryAccessError(f"memory path {path!r} contains a NUL or backslash")
        if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
            raise MemoryAccessError(f"memory path {path!r} is absolute; use a relative path like 'notes.md'")
        parts = [part for part in PurePosixPath(path).parts if part != "."]
        if ".." in parts:
            raise MemoryAccessError(f"memory path {path!r} leaves the memory directory ('..')")
        relative = "/".join(parts)
        if not relative and not allow_root:
            raise MemoryAccessError("a file path is needed, not the memory directory itself")
        if len(relative) > self.limits.max_path_chars:
            raise MemoryAccessError(f"memory path longer than {self.limits.max_path_chars} characters")
        # No symlinks anywhere on the way: they could point outside.
        current = self.root
        for part in parts:
            current = current / part
            if current.is_symlink():
                raise MemoryAccessError(f"memory path {path!r} goes through a symlink")
        return relative

    def _existing(self, path: str) -> Path:
        relative = self._normalize(path)
        target = self.root / relative
        if relative not in self._sizes or not target.is_file():
            raise FileNotFoundError(f"no memory file {relative!r}; files: {', '.join(sorted(self._sizes)[:20]) or 'none'}")
        return target

    def _writable(self, path: str) -> tuple[Path, str]:
        relative = self._normalize(path)
        target = self.root / relative
        if target.is_dir():
            raise IsADirectoryError(f"memory path {relative!r} is a folder")
        if relative not in self._sizes and len(self._sizes) >= self.limits.max_files:
            raise MemoryLimitError(f"memory holds the maximum of {self.limits.max_files} files")
        return target, relative  # its folder is made by the operation, after the size checks

    def _check_size(self, relative: str, new_size: int) -> None:
        if new_size > self.limits.max_file_chars:
            raise MemoryLimitError(
                f"{relative!r} would hold {new_size} characters; the limit per file is {self.limits.max_file_chars}"
            )
        total = self.total_chars - self._sizes.get(relative, 0) + new_size
        if total > self.limits.max_total_chars:
            raise MemoryLimitError(
                f"memory would hold {total} characters; the limit is {self.limits.max_total_chars}"
            )

    def _record(self, op: str, path: str | None, pattern: str | None, run: Any,
                read: Any = None, written: int = 0, text: str | None = None) -> Any:  # fmt: skip
        with self.guard():
            started = time.perf_counter()
            try:
                result = run()
            except Exception as error:
                self.ops.append(MemoryOp(op, path, pattern, 0, 0, False, f"{type(error).__name__}: {error}",
                                         tool_call_id=self.tool_call_id))  # fmt: skip
                raise
            finally:
                self.elapsed_s += time.perf_counter() - started
            chars_read = int(read(result)) if read is not None else 0
            self.ops.append(MemoryOp(op, path, pattern, written, chars_read, True, None, text, self.tool_call_id))
            return result

    def record_refusal(self, op: str, error: str) -> None:
        """A tool call that named no valid operation (unknown tool, bad arguments): recorded
        as a refused operation, so the model's mistakes are counted."""
        with self.guard():
            self.ops.append(MemoryOp(op, None, None, 0, 0, False, error, tool_call_id=self.tool_call_id))
