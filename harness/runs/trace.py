"""Writing one episode's trace: steps.jsonl, messages.jsonl and episode.json.

Chat inputs are stored verbatim but each distinct message only once: a call's `input` is
the list of its message ids (`{"messages": ["m0", "m3", ...]}`) into messages.jsonl. The
shared conversation prefix (instructions, history) is thus not stored again on every step.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from harness.runs.layout import (
    EPISODE_FILE,
    MESSAGES_FILE,
    STEPS_FILE,
    atomic_write_json,
    read_jsonl,
)


class _AppendOnlyLines:
    """Whole JSON lines appended with one write each; flushed to the OS per line."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, record: dict[str, Any]) -> int:
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        os.write(self._fd, line)
        return len(line)

    def close(self) -> None:
        os.close(self._fd)


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


class MessageStore:
    """Gives each distinct message (every field: role, content, tool calls, tool call id) an
    id and stores it once, verbatim; tool lists ({"id": "t0", "tools": [...]}) likewise."""

    def __init__(self, path: Path) -> None:
        self._ids: dict[str, str] = {}
        self._tool_ids: dict[str, str] = {}
        for record in read_jsonl(path):  # reopened (resume): keep the ids already given
            record = dict(record)
            known = record.pop("id")
            if "tools" in record:
                self._tool_ids[_key(record["tools"])] = known
            else:
                self._ids[_key(record)] = known
        self._lines = _AppendOnlyLines(path)
        self.bytes_written = 0
        self._by_id: dict[str, str] | None = None

    def ids_of(self, messages: list[dict[str, Any]]) -> list[str]:
        ids = []
        for message in messages:
            key = _key(message)
            known = self._ids.get(key)
            if known is None:
                known = f"m{len(self._ids)}"
                self._ids[key] = known
                if self._by_id is not None:
                    self._by_id[known] = key
                self.bytes_written += self._lines.write({"id": known, **message})
            ids.append(known)
        return ids

    def record(self, known: str) -> dict[str, Any]:
        """The stored record of an id given here (without the id): a message, or {"tools": [...]}."""
        if self._by_id is None:  # built on first use, then kept up to date
            self._by_id = {v: k for k, v in self._ids.items()} | {v: k for k, v in self._tool_ids.items()}
        key = self._by_id[known]
        return {"tools": json.loads(key)} if known.startswith("t") else dict(json.loads(key))

    def id_of_tools(self, tools: list[dict[str, Any]]) -> str:
        key = _key(tools)
        known = self._tool_ids.get(key)
        if known is None:
            known = f"t{len(self._tool_ids)}"
            self._tool_ids[key] = known
            if self._by_id is not None:
                self._by_id[known] = key
            self.bytes_written += self._lines.write({"id": known, "tools": tools})
        return known

    def close(self) -> None:
        self._lines.close()


class EpisodeTrace:
    """The files of one episode folder, written as the episode runs."""

    def __init__(self, directory: Path, fresh: bool = True) -> None:
        """`fresh`: start empty files; else go on appending to an earlier attempt's (agent.resume)."""
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        if fresh:
            for name in (STEPS_FILE, MESSAGES_FILE):
                (directory / name).unlink(missing_ok=True)
        self.messages = MessageStore(directory / MESSAGES_FILE)
        self._steps = _AppendOnlyLines(directory / STEPS_FILE)
        self.step_bytes: list[int] = []  # bytes per step (steps.jsonl + new messages)
        self._message_bytes_counted = 0

    def write_step(self, record: dict[str, Any]) -> None:
        size = self._steps.write(record)
        new_message_bytes = self.messages.bytes_written - self._message_bytes_counted
        self._message_bytes_counted = self.messages.bytes_written
        self.step_bytes.append(size + new_message_bytes)

    def finish(self, result: dict[str, Any]) -> None:
        self._steps.close()
        self.messages.close()
        atomic_write_json(self.directory / EPISODE_FILE, result)  # last: marks completion
