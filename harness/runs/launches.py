"""Where and how often an episode was launched: launches.jsonl, written by the scheduler.

One line per launch of the episode's worker: which runtime placed it where (a Ray node, a
container, a local process), when it started and ended, how many steps the episode had recorded
before and after it, and how it ended. An episode whose worker died (a killed process, a lost
Ray node, a crashed game) is launched again in the same run, up to the scheduler's `attempts`,
and continues from its last recorded step (agent.resume): this file is the record of each move.
The harness writes it on the run's side; it never travels to the worker.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from pydantic import Field

from harness.runs.layout import STEPS_FILE, atomic_write_text, read_jsonl
from harness.runs.records import Record, validated

LAUNCHES_FILE = "launches.jsonl"
# Failures of a worker's process, not of its code or of a server: launched again at once.
# (A model server that does not answer has had the client's retries; the run's consecutive
# failure rule decides about it. A wall-clock cap would be passed again.)
RELAUNCHED_KINDS = ("worker", "env")


class LaunchRecord(Record):
    """One launch of an episode's worker (a line of launches.jsonl)."""

    launch: int = Field(description="1 for the first launch of the episode in this run folder, then 2, 3, ...")
    runtime: str
    placement: dict[str, Any] = Field(description="where it ran: {node, address, host, pid} on Ray, else {host, pid}")
    started: str
    ended: str
    steps_before: int = Field(description="steps recorded when it was launched (it continued from them)")
    steps_after: int = Field(description="steps recorded when it ended")
    exit_code: int | None
    outcome: str = Field(description="the episode's status, or 'KIND: error' when it ended in a failure")


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def recorded_steps(directory: Path) -> int:
    """The whole lines of steps.jsonl (the steps recorded so far)."""
    path = directory / STEPS_FILE
    if not path.is_file() or path.is_symlink():
        return 0
    count = 0
    with open(path, "rb") as steps:
        while chunk := steps.read(1 << 20):  # by the megabyte: a 100,000-step trace is near a gigabyte
            count += chunk.count(b"\n")
    return count


def read_launches(directory: Path) -> list[LaunchRecord]:
    path = directory / LAUNCHES_FILE
    return [LaunchRecord.model_validate(line) for line in read_jsonl(path)] if path.is_file() and not path.is_symlink() else []


def record_launch(directory: Path, entry: dict[str, Any]) -> None:
    """Append `entry` to launches.jsonl (the file is replaced whole: a link a worker left there is
    never followed)."""
    path = directory / LAUNCHES_FILE
    earlier = path.read_text(encoding="utf-8") if path.is_file() and not path.is_symlink() else ""
    atomic_write_text(path, earlier + json.dumps(validated(LaunchRecord, entry)) + "\n")
