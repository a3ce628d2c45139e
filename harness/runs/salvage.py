"""The result of an episode whose worker ended without writing one (it crashed, or the
watchdog ended it): built from the steps it recorded, nothing recorded is lost.

A worker can die in the middle of a step, after a memory operation touched the directory
but before the step's record (which carries that operation) was written. The memory
directory is therefore rebuilt from the recorded operations, so that directory and trace
agree; a torn last line of steps.jsonl (a write cut short) is removed.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.memory.replay import final_memory
from harness.runs.derive import derived_totals, summed_times
from harness.runs.jobs import EpisodeSpec
from harness.runs.layout import MEMORY_DIR, RESUMES_FILE, STEPS_FILE, read_jsonl
from harness.runs.read import read_messages, read_steps
from harness.runs.records import EpisodeRecord, StepRecord, validated


def drop_torn_line(path: Path) -> None:
    """Cut a last line that was not written whole (no final newline)."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def restore_memory(directory: Path, steps: list[StepRecord]) -> dict[str, str]:
    """Make the memory folder what the recorded operations say it is; returns path -> text."""
    files = final_memory(s.memory_ops for s in steps)  # only paths the sandbox could have written
    memory = directory / MEMORY_DIR
    if memory.is_symlink() or (memory.exists() and not memory.is_dir()):
        memory.unlink()  # a link left by the worker is removed, never followed
    shutil.rmtree(memory, ignore_errors=True)
    memory.mkdir(parents=True)  # new and empty: nothing inside it can be a link
    for relative, text in files.items():
        target = memory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return files


def earlier_resumes(directory: Path) -> list[dict[str, Any]]:
    """The episode's resumes so far (resumes.jsonl), for its episode.json."""
    return read_jsonl(directory / RESUMES_FILE) if (directory / RESUMES_FILE).exists() else []


def salvaged_episode(spec: EpisodeSpec, kind: str, message: str) -> dict[str, Any]:
    """episode.json for an episode that ended outside the episode loop, from its records."""
    directory = Path(spec.episode_dir)
    drop_torn_line(directory / STEPS_FILE)
    steps = read_steps(directory)
    restore_memory(directory, steps)
    return validated(EpisodeRecord, {
        "env": spec.env, "task": spec.task, "seed": spec.seed, "status": "errored", "error": message,
        "error_kind": kind, "max_steps": spec.max_steps,
        **derived_totals(steps, read_messages(directory)),
        "time_s": summed_times(steps),
        "trace_bytes": {"total": (directory / STEPS_FILE).stat().st_size if (directory / STEPS_FILE).exists() else 0,
                        "first_step": 0, "last_step": 0},
        "final_observation": steps[-1].observation if steps else "",
        "spec": asdict(spec),
        "salvaged": True,  # written by the scheduler from the records, not by the episode loop
        "resumes": earlier_resumes(directory),
    })  # fmt: skip
