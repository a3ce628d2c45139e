"""Writing one episode's trace: steps.jsonl, messages.jsonl and episode.json.

Chat inputs are stored verbatim but each distinct message only once: a call's `input` is
the list of its message ids (`{"messages": ["m0", "m3", ...]}`) into messages.jsonl. The
shared conversation prefix (instructions, history) is thus not stored again on every step.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from harness.runs.layout import (
    EPISODE_FILE,
    MESSAGES_FILE,
    STEPS_FILE,
    atomic_write_json,
    iter_jsonl,
)
from harness.runs.recent import Recent


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


# Distinct messages an episode remembers for dedup: those used most recently. A message not
# used within the last DEDUP_WINDOW distinct ones is stored again under a new id (still
# verbatim); no stored run came near it. The bound keeps a 100,000-step episode's memory flat.
DEDUP_WINDOW = 4096
KNOWN_TEXTS = 1024  # plain messages known by their role and text (no hashing again)


def _key(value: Any) -> bytes:
    """The dedup key of a message or tool list: a digest of its canonical JSON. orjson where it
    is exact (it writes NaN and infinities as null: a value whose orjson form holds "null" takes
    the json module's path instead, as do those orjson refuses)."""
    try:
        data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        if b"null" not in data:
            return b"O" + hashlib.sha256(data).digest()[:16]
    except TypeError:
        pass
    data = json.dumps(value, sort_keys=True, ensure_ascii=False).encode(errors="surrogatepass")
    return b"J" + hashlib.sha256(data).digest()[:16]


class MessageStore:
    """Gives each distinct message (every field: role, content, tool calls, tool call id) an
    id and stores it once, verbatim; tool lists ({"id": "t0", "tools": [...]}) likewise."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ids: Recent[bytes, str] = Recent(DEDUP_WINDOW)
        self._tool_ids: Recent[bytes, str] = Recent(DEDUP_WINDOW)
        # (role, text) -> (message id, dedup key): plain messages known by their text
        self._plain: Recent[tuple[str, str], tuple[str, bytes]] = Recent(KNOWN_TEXTS)
        self._given = {"m": 0, "t": 0}  # ids given so far, of each kind
        for record in iter_jsonl(path):  # reopened (resume): keep the ids already given
            record = dict(record)
            known = record.pop("id")
            tools = "tools" in record
            key = _key(record["tools"] if tools else record)
            (self._tool_ids if tools else self._ids)[key] = known
            self._given["t" if tools else "m"] += 1
        self._lines = _AppendOnlyLines(path)
        self.bytes_written = 0

    def _id(self, kind: str, value: Any, record: dict[str, Any], key: bytes | None = None) -> str:
        known_ids = self._tool_ids if kind == "t" else self._ids
        key = key or _key(value)
        known = known_ids.get(key)
        if known is None:
            known = f"{kind}{self._given[kind]}"
            self._given[kind] += 1
            known_ids[key] = known
            self.bytes_written += self._lines.write({"id": known, **record})
        return known

    def ids_of(self, messages: list[dict[str, Any]]) -> list[str]:
        return [self._message_id(message) for message in messages]

    def _message_id(self, message: dict[str, Any]) -> str:
        """`_id` of a message; a plain one (a role and a text) seen lately is known by its text
        without serializing and hashing it again: a 16-step history sends each message 32 times,
        often as a new string built from the same parts (a str hashes once, compares by memcmp)."""
        content, role = message.get("content"), message.get("role")
        if len(message) != 2 or not isinstance(content, str) or not isinstance(role, str):
            return self._id("m", message, message)
        seen = self._plain.get((role, content))
        if seen is not None:
            known = seen[0]
            if self._ids.get(seen[1]) == known:  # still in the dedup window as this id: used again
                return known
        key = _key(message)
        known = self._id("m", message, message, key)
        self._plain[(role, content)] = (known, key)
        return known

    def id_of_tools(self, tools: list[dict[str, Any]]) -> str:
        return self._id("t", tools, {"tools": tools})

    def close(self) -> None:
        self._lines.close()


@dataclass
class StepBytes:
    """Bytes each step added to the trace (its steps.jsonl line and its new messages): the
    total, the first step's and the last's."""

    total: int = 0
    first: int = 0
    last: int = 0
    steps: int = 0

    def add(self, size: int) -> None:
        self.total += size
        self.first = size if self.steps == 0 else self.first
        self.last, self.steps = size, self.steps + 1


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
        self.step_bytes = StepBytes()
        self._message_bytes_counted = 0

    def write_step(self, record: dict[str, Any]) -> None:
        size = self._steps.write(record)
        new_message_bytes = self.messages.bytes_written - self._message_bytes_counted
        self._message_bytes_counted = self.messages.bytes_written
        self.step_bytes.add(size + new_message_bytes)

    def finish(self, result: dict[str, Any]) -> None:
        self._steps.close()
        self.messages.close()
        atomic_write_json(self.directory / EPISODE_FILE, result)  # last: marks completion
