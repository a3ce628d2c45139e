"""The result of an episode whose worker ended without writing one (it crashed, or the
watchdog ended it): built from the steps it recorded, nothing recorded is lost.

A worker can die in the middle of a step, after a memory operation touched the directory
but before the step's record (which carries that operation) was written. The memory
directory is therefore rebuilt from the recorded operations, so that directory and trace
agree; a torn last line of steps.jsonl (a write cut short) is removed.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.memory.replay import final_memory
from harness.runs.derive import StepTotals
from harness.runs.jobs import EpisodeSpec
from harness.runs.layout import MEMORY_DIR, RESUMES_FILE, STEPS_FILE, read_jsonl
from harness.runs.read import MessageIndex, iter_steps
from harness.runs.records import EpisodeRecord, StepRecord, validated


def drop_torn_line(path: Path) -> None:
    """Cut a last line that was not written whole (no final newline); only the file's tail is
    read."""
    if not path.exists() or path.is_symlink():
        return  # a link left by the worker is never written through
    with open(path, "r+b") as trace:
        end = trace.seek(0, os.SEEK_END)
        if end == 0:
            return
        trace.seek(end - 1)
        if trace.read(1) == b"\n":
            return
        cut, chunk = end, 1 << 16
        while cut > 0:  # back, chunk by chunk, to the last whole line's newline
            start = max(0, cut - chunk)
            trace.seek(start)
            newline = trace.read(cut - start).rfind(b"\n")
            if newline >= 0:
                trace.truncate(start + newline + 1)
                return
            cut = start
        trace.truncate(0)


def clear_for_relaunch(directory: Path) -> None:
    """What the host does to a dead worker's folder before launching the episode again: a torn
    last line cut, and a memory folder that is a link (or no folder) removed. The next worker
    rebuilds the memory from the records (agent.resume); nothing else is read."""
    drop_torn_line(directory / STEPS_FILE)
    memory = directory / MEMORY_DIR
    if memory.is_symlink() or (memory.exists() and not memory.is_dir()):
        memory.unlink()  # a link left by the worker is removed, never followed


def restore_memory(directory: Path, steps: list[StepRecord]) -> dict[str, str]:
    """Make the memory folder what the recorded operations say it is; returns path -> text."""
    return write_memory(directory, final_memory(s.memory_ops for s in steps))


def write_memory(directory: Path, files: dict[str, str]) -> dict[str, str]:
    """Make the memory folder hold exactly `files` (path -> text, only paths the sandbox could
    have written: memory.replay); returns them."""
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
    """episode.json for an episode that ended outside the episode loop, from its records (read
    a step at a time: a 100,000-step trace is never held)."""
    directory = Path(spec.episode_dir)
    drop_torn_line(directory / STEPS_FILE)
    with MessageIndex(directory) as messages:
        totals = StepTotals(messages)
        for step in iter_steps(directory):
            totals.add(step)
        derived = totals.derived()
    write_memory(directory, totals.files)
    return validated(EpisodeRecord, {
        "env": spec.env, "task": spec.task, "seed": spec.seed, "status": "errored", "error": message,
        "error_kind": kind, "max_steps": spec.max_steps,
        **derived,
        "time_s": totals.summed_times(),
        "trace_bytes": {"total": (directory / STEPS_FILE).stat().st_size if (directory / STEPS_FILE).exists() else 0,
                        "first_step": 0, "last_step": 0},
        "final_observation": totals.last.observation if totals.last else "",
        "spec": asdict(spec),
        "salvaged": True,  # written by the scheduler from the records, not by the episode loop
        "resumes": earlier_resumes(directory),
    })  # fmt: skip
