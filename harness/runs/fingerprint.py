"""What of an episode's records must not depend on how it was run: its fingerprint.

Two runs of the same submission on the same seeds against a model that answers by content
(models.scripted.answer_by_content) play the same episodes, whether an episode ran whole, was
resumed after a kill, or moved to another Ray node. Their records then differ only in what
measures the run itself (times, latencies, a call's retries after a server restart) and in the
records of the interruption (resumes, launches, discarded steps). The fingerprint is everything
else: every step (untimed), the messages, the memory folder, and the episode's result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.runs.layout import EPISODE_FILE, MEMORY_DIR, MESSAGES_FILE, STEPS_FILE

RUN_DEPENDENT = ("time_s", "latency_s", "retries")  # measured, not decided
RESULT_FIELDS = ("status", "error_kind", "steps", "progression", "reward_total", "invalid_actions")


def untimed(record: Any) -> Any:
    """`record` without the fields that measure the run (at any depth)."""
    if isinstance(record, dict):
        return {key: untimed(value) for key, value in record.items() if key not in RUN_DEPENDENT}
    if isinstance(record, list):
        return [untimed(value) for value in record]
    return record


def episode_fingerprint(folder: Path) -> dict[str, Any]:
    """The records of the episode in `folder` that two equal runs must share."""
    steps_path, messages_path = folder / STEPS_FILE, folder / MESSAGES_FILE
    steps = [untimed(json.loads(line)) for line in steps_path.read_text().splitlines()] if steps_path.exists() else []
    memory_dir = folder / MEMORY_DIR
    memory = {path.relative_to(memory_dir).as_posix(): path.read_text()
              for path in sorted(memory_dir.rglob("*")) if path.is_file()} if memory_dir.is_dir() else {}  # fmt: skip
    result = json.loads((folder / EPISODE_FILE).read_text()) if (folder / EPISODE_FILE).exists() else {}
    return {"steps": steps, "messages": messages_path.read_text() if messages_path.exists() else "",
            "memory": memory, "result": {key: result.get(key) for key in RESULT_FIELDS}}  # fmt: skip


def differing_parts(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    """Which parts of two fingerprints differ (for a message that says where)."""
    parts = [part for part in ("messages", "memory", "result") if first[part] != second[part]]
    steps_a, steps_b = first["steps"], second["steps"]
    if len(steps_a) != len(steps_b):
        parts.append(f"steps ({len(steps_a)} against {len(steps_b)})")
    else:
        parts += [f"step {index}" for index, (a, b) in enumerate(zip(steps_a, steps_b)) if a != b][:3]
    return parts
