"""The game's own log: what the game process received and sent, one JSON line per event.

The game runs in its own process (the env server), never in the scaffold's, and writes this
log there: the reset (task, seed, a digest of the first observation), then every action it
played with the reward, done/truncated flags, progression and a digest of the observation it
sent back. The score of an episode is taken from this log (runs.seal), not from what the
worker that ran the scaffold recorded. Standard library only: the env images run it.

    {"event": "reset", "env", "task", "seed", "text": {...}, "digest"}
    {"event": "step", "index", "action", "reward", "done", "truncated", "progression", "digest"}

Its one reader is here too (`read_game_session`): the seal, verify and a snapshot's clone read
the last session the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from harness.envs.base import StepResult, TextVariant

GAME_LOG_FILE = "game.jsonl"


@dataclass(frozen=True)
class LogPosition:
    """A point in a game log: bytes written, their sha256, the session's steps by then, and
    the running digest itself (to go on from)."""

    written: int
    sha256: str
    steps: int
    state: Any


def observation_digest(text: str) -> str:
    """The sha256 of an observation's text (UTF-8), hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class GameLog:
    """Appends the game's events to a file, one flushed line each (a killed game process
    leaves every event it answered). The file is created at the first reset, so a game that
    fails to start leaves an earlier attempt's log as it was; it is opened without following a
    link. Each reset starts a session; the last one is the episode's."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._stream: IO[bytes] | None = None
        self._steps = 0
        self._written = 0  # bytes in the file: where the next line goes
        self._sha256 = hashlib.sha256()  # of those bytes (a snapshot checks the file against it)

    def _write(self, record: dict[str, Any]) -> None:
        assert self._stream is not None
        line = (json.dumps(record) + "\n").encode("utf-8")
        self._stream.write(line)
        self._stream.flush()
        self._written += len(line)
        self._sha256.update(line)

    def position(self) -> LogPosition:
        """Where the log stands: its length, its digest, the steps of its session so far."""
        return LogPosition(self._written, self._sha256.hexdigest(), self._steps, self._sha256.copy())

    def detach(self) -> None:
        """Stop writing without a trace in the file (a snapshot's copy of the log, envs.snapshot)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()  # every line is flushed already: closing writes nothing

    def continue_at(self, position: LogPosition) -> bytes:
        """Take over the file as it was at `position` (a snapshot's): its first bytes must be the
        ones this log wrote (else ValueError, nothing changed); the lines after them (the steps
        a killed game played since) are cut, and the session goes on from there. Returns the
        kept bytes."""
        flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0)
        stream = os.fdopen(os.open(self.path, flags), "r+b")
        try:
            kept = stream.read(position.written)
            if len(kept) != position.written or hashlib.sha256(kept).hexdigest() != position.sha256:
                raise ValueError(f"{self.path} is not what the game wrote up to its snapshot")
            stream.truncate(position.written)
            stream.seek(position.written)
        except BaseException:
            stream.close()
            raise
        self._stream, self._steps, self._written = stream, position.steps, position.written
        self._sha256 = position.state.copy()
        return kept

    def reset(self, env: str, task: str, seed: int, text: TextVariant, observation: str) -> None:
        """Start a session: the attempt's first reset replaces the file, a later one (the worker
        restarting a replay that diverged) appends; the last session is the one that counts."""
        if self._stream is None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
            self._stream = os.fdopen(os.open(self.path, flags, 0o644), "wb")
            self._written, self._sha256 = 0, hashlib.sha256()
        self._steps = 0
        self._write({"event": "reset", "env": env, "task": task, "seed": seed, "text": text.to_json(),
                     "digest": observation_digest(observation)})  # fmt: skip

    def step(self, action: str, result: StepResult) -> str:
        """Log one played step; returns the digest of the observation it sent back."""
        digest = observation_digest(result.observation.text)
        self._write({"event": "step", "index": self._steps, "action": action, "reward": result.reward,
                     "done": bool(result.done), "truncated": bool(result.truncated),
                     "progression": result.progression, "digest": digest,
                     **({"solved": bool(result.info["solved"])} if "solved" in result.info else {}),
                     **({"unlocked": list(result.info["new_achievements"])} if result.info.get("new_achievements") else {})})  # fmt: skip
        self._steps += 1
        return digest

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


# -- reading ----------------------------------------------------------------------------------

STEP_KEYS = ("index", "action", "reward", "done", "truncated", "progression", "digest")


@dataclass
class LoggedSession:
    """The last session of a game log: its reset and the steps played after it."""

    reset: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)


class GameLogError(ValueError):
    """A game log that is not one (a line that is no event, steps out of order)."""


def read_game_session(path: Path) -> LoggedSession | None:
    """The last session of the game log at `path`; None when there is no log. A torn last
    line (a game process killed mid-write) is dropped; anything else malformed raises."""
    if not path.is_file() or path.is_symlink():
        return None
    with open(path, "rb") as log:
        return last_session(log, path.name)


def last_session(lines: Iterable[bytes], name: str) -> LoggedSession | None:
    """The last session of a game log's `lines` (each with its newline; a torn last one is
    dropped); GameLogError when a line is not the next event of a session."""
    session: LoggedSession | None = None
    for number, line in enumerate(lines, 1):
        if not line.endswith(b"\n"):
            break  # torn: no final newline
        if line == b"\n":
            continue
        session = _next_event(session, line, name, number)
    return session


def _next_event(session: LoggedSession | None, line: bytes, name: str, number: int) -> LoggedSession | None:
    try:
        event = json.loads(line)
    except ValueError as error:
        raise GameLogError(f"{name}:{number} is not JSON: {error}") from error
    kind = event.get("event") if isinstance(event, dict) else None
    if kind == "reset":
        return LoggedSession(event)
    if kind == "step" and session is not None and all(key in event for key in STEP_KEYS) \
            and event["index"] == len(session.steps):  # fmt: skip
        session.steps.append(event)
        return session
    raise GameLogError(f"{name}:{number} is not the next event of a game session")
