"""The worker: runs one episode in its own process (the local sandbox for scaffold code).

    python -m harness.agent.worker JOB.json

JOB.json holds {"submission": DIR, "episode": EpisodeSpec, "model": ModelConfig}. Progress
goes to stdout as JSON lines ({"event": "step", ...}, then {"event": "done", ...}); the
episode's files are written by the episode loop itself. Exit code 0 means episode.json was
written (whatever the episode's status); anything else is a worker failure.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from harness.agent.episode import run_episode
from harness.agent.prepare import prepare_episode
from harness.agent.submission import load_scaffold_class, read_submission
from harness.envs.game_process import die_with_parent
from harness.models.router import ModelConfig
from harness.runs.jobs import EpisodeSpec
from harness.runs.layout import EPISODE_FILE, atomic_write_json
from harness.runs.phase import PhaseMarker
from harness.runs.salvage import salvaged_episode

PROGRESS_INTERVAL_S = 0.5  # at most one step event per interval: the scheduler's thread wakes per line


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class StepEvents:
    """The episode's step events, one line per PROGRESS_INTERVAL_S at most, each saying how many
    steps it stands for (`steps`): a line per step woke the scheduler 320 times a second at
    N = 64. The steps not yet told are told before the episode's last event (`flush`)."""

    def __init__(self, interval_s: float = PROGRESS_INTERVAL_S) -> None:
        self.interval_s, self._untold, self._told_at = interval_s, 0, -float("inf")
        self._latest: dict[str, Any] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        self._untold, self._latest = self._untold + 1, event
        if time.monotonic() - self._told_at >= self.interval_s:
            self.flush()

    def flush(self) -> None:
        if self._untold:
            _emit({**self._latest, "steps": self._untold})
            self._untold, self._told_at = 0, time.monotonic()


def end_with_parent() -> None:
    """End this worker (and with it its game) when the process that launched it ends: a killed
    harness, a Ray worker cancelled or lost with its node. An orphan would go on playing and
    writing into a folder that a resumed run continues from; the kernel's signal reaches it even
    in C code that never returns to Python."""
    die_with_parent(os.getppid())


def main(job_path: str) -> int:
    end_with_parent()
    job = json.loads(Path(job_path).read_text())
    spec = EpisodeSpec(**job["episode"])
    model = ModelConfig(**{**job["model"], "adapter_routines": tuple(job["model"].get("adapter_routines") or ())})
    submission = read_submission(job["submission"])
    os.chdir(spec.episode_dir)  # relative paths in scaffold code land in the episode folder
    phase = PhaseMarker(Path(spec.episode_dir))  # read by the scheduler's watchdog
    # The game first, in its own process and made and reset there, before any scaffold code
    # runs: nothing the scaffold's import patches reaches it, and no other session can take it.
    phase.enter("env")
    prepared = prepare_episode(spec)
    phase.enter("scaffold")  # importing the scaffold runs its code
    try:
        scaffold_class = load_scaffold_class(submission)
    except (Exception, SystemExit) as error:  # checked before the run, yet failed here: still its code
        prepared.close()
        record = salvaged_episode(spec, "scaffold", f"loading the scaffold failed: {type(error).__name__}: {error}")
        atomic_write_json(Path(spec.episode_dir) / EPISODE_FILE, record)
        _emit({"event": "done", "status": "errored", "steps": 0, "progression": 0.0, "error": record["error"]})
        return 0
    steps = StepEvents()
    try:
        result = run_episode(spec, scaffold_class, model.router(), on_step=steps, phase=phase, prepared=prepared)
    finally:
        steps.flush()
    _emit({"event": "done", "status": result["status"], "steps": result["steps"],
           "progression": result["progression"], "error": result["error"]})  # fmt: skip
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m harness.agent.worker JOB.json", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
