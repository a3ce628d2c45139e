"""The run directory, the one source of truth of a run, and its atomic writes.

    runs/<run_id>/
      run.json                          what was run, and its status
      episodes/<env>/<task>/<seed>/
        steps.jsonl                     one record per step
        messages.jsonl                  each distinct chat message once (steps refer to them)
        memory/                         the memory directory as the episode left it
        episode.json                    the result; its presence marks the episode complete
      results.json                      aggregated metrics per env and overall
      leaderboard.md
"""

from __future__ import annotations

import datetime
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonlines

RUN_FILE, RESULTS_FILE, LEADERBOARD_FILE = "run.json", "results.json", "leaderboard.md"
STEPS_FILE, MESSAGES_FILE, EPISODE_FILE, MEMORY_DIR = "steps.jsonl", "messages.jsonl", "episode.json", "memory"
VERIFICATION_FILE = "verification.json"
RESUMES_FILE = "resumes.jsonl"  # an episode's restarts over an earlier attempt (agent.resume)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename: readers see the old or the new file, never half;
    a link at `path` is replaced, never followed (the temporary file is new, O_EXCL)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """atomic_write_bytes of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All complete records; a torn last line (a run killed mid-write) is skipped."""
    return list(iter_jsonl(path))


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The complete records one at a time (read_jsonl without holding the file's records)."""
    if not path.exists():
        return
    with jsonlines.open(path) as reader:
        try:
            yield from reader.iter(type=dict, skip_invalid=False)
        except jsonlines.InvalidLineError:
            pass  # only the last line can be torn: appends are whole lines


def new_run_id(submission_name: str) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", submission_name).strip("-") or "run"
    return f"{stamp}-{slug}"


class RunDir:
    """Paths of one run; creating it does not touch the disk."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def run_id(self) -> str:
        return self.root.name

    @property
    def run_file(self) -> Path:
        return self.root / RUN_FILE

    @property
    def results_file(self) -> Path:
        return self.root / RESULTS_FILE

    @property
    def leaderboard_file(self) -> Path:
        return self.root / LEADERBOARD_FILE

    def episode_dir(self, env: str, task: str, seed: int) -> Path:
        return self.root / "episodes" / env / task / str(seed)

    def episode_dirs(self) -> list[Path]:
        """Every episode folder that has started (complete or not), sorted."""
        return sorted(p.parent for p in (self.root / "episodes").glob(f"*/*/*/{STEPS_FILE}"))
