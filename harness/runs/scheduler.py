"""Scheduling episodes over workers, with a live progress display, resume and clean Ctrl-C.

Concurrency is limited here, in one place: `workers` episodes run at once, each in its own
worker (a process of the runtime). A worker that dies without writing episode.json leaves an
`errored` episode of kind `worker` (an infrastructure failure that `--resume` retries).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from harness.models.router import ModelConfig
from harness.runs.jobs import EpisodeSpec, is_scored
from harness.runs.layout import EPISODE_FILE, atomic_write_json, read_json


class Runtime(Protocol):
    name: str

    def launch(self, job_path: Path, log_path: Path) -> Any: ...

    def close(self) -> None: ...


@dataclass
class EpisodeJob:
    spec: EpisodeSpec
    submission: str
    model: ModelConfig

    @property
    def directory(self) -> Path:
        return Path(self.spec.episode_dir)

    def to_json(self) -> dict[str, Any]:
        return {"submission": self.submission, "episode": asdict(self.spec), "model": asdict(self.model)}


def needs_run(job: EpisodeJob) -> bool:
    """False when the episode is complete: episode.json exists and is not an infrastructure error."""
    result_path = job.directory / EPISODE_FILE
    if not result_path.exists():
        return True
    result = read_json(result_path)
    return not is_scored(result)


class Interrupted(Exception):
    """The run was stopped (Ctrl-C); everything recorded so far stays on disk."""


class Scheduler:
    def __init__(self, runtime: Runtime, workers: int = 1, show_progress: bool = True) -> None:
        self.runtime = runtime
        self.workers = max(1, workers)
        self.show_progress = show_progress
        self._stop = threading.Event()
        self._running: set[Any] = set()
        self._lock = threading.Lock()

    def run(self, jobs: Iterable[EpisodeJob]) -> list[dict[str, Any]]:
        pending = [job for job in jobs if needs_run(job)]
        progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            disable=not self.show_progress,
        )  # fmt: skip
        outcomes: list[dict[str, Any]] = []
        previous_handler = signal.getsignal(signal.SIGTERM)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _interrupt)  # a killed harness stops like Ctrl-C
        with progress:
            episodes_bar = progress.add_task("episodes", total=len(pending))
            steps_bar = progress.add_task("steps", total=sum(job.spec.max_steps for job in pending))
            executor = ThreadPoolExecutor(max_workers=self.workers)
            futures = [executor.submit(self._run_one, job, progress, episodes_bar, steps_bar) for job in pending]
            try:
                for future in futures:
                    while not future.done():
                        time.sleep(0.1)  # keep the main thread awake for Ctrl-C
                    outcomes.append(future.result())
            except KeyboardInterrupt:
                self._stop.set()
                self._terminate_running()
                executor.shutdown(wait=True, cancel_futures=True)
                raise Interrupted("interrupted: recorded steps are kept; resume with --resume") from None
            finally:
                if threading.current_thread() is threading.main_thread():
                    signal.signal(signal.SIGTERM, previous_handler)
            executor.shutdown(wait=True)
        return outcomes

    def _terminate_running(self) -> None:
        with self._lock:
            running = list(self._running)
        for process in running:
            try:
                process.terminate()
            except Exception:
                pass
        for process in running:
            try:
                process.wait(timeout=15)
            except Exception:
                process.kill()

    def _run_one(self, job: EpisodeJob, progress: Progress, episodes_bar: Any, steps_bar: Any) -> dict[str, Any]:
        if self._stop.is_set():
            return {"key": job.spec.key, "status": "not started"}
        job.directory.mkdir(parents=True, exist_ok=True)
        (job.directory / EPISODE_FILE).unlink(missing_ok=True)  # an infrastructure error is retried
        job_path = job.directory / "job.json"
        atomic_write_json(job_path, job.to_json())
        process = self.runtime.launch(job_path, job.directory / "worker.log")
        with self._lock:
            self._running.add(process)
        steps_seen = 0
        last: dict[str, Any] = {}
        try:
            for line in process.stdout:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue  # scaffold code printing to stdout: not an event
                if event.get("event") == "step":
                    steps_seen += 1
                    progress.advance(steps_bar)
                elif event.get("event") == "done":
                    last = event
            process.wait()
        finally:
            with self._lock:
                self._running.discard(process)
        progress.advance(steps_bar, max(0, job.spec.max_steps - steps_seen))
        progress.advance(episodes_bar)
        result_path = job.directory / EPISODE_FILE
        if not result_path.exists() and not self._stop.is_set():
            log_tail = (job.directory / "worker.log").read_text(errors="replace")[-2000:]
            atomic_write_json(result_path, _worker_failure(job, process.returncode, log_tail))
        return {"key": job.spec.key, "exit_code": process.returncode, **last}


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _worker_failure(job: EpisodeJob, exit_code: int | None, log_tail: str) -> dict[str, Any]:
    """episode.json for a worker that died before finishing its episode."""
    from harness.runs.layout import STEPS_FILE, read_jsonl

    steps = read_jsonl(job.directory / STEPS_FILE)
    return {
        "env": job.spec.env, "task": job.spec.task, "seed": job.spec.seed, "status": "errored",
        "error": f"worker exited with code {exit_code} before finishing: {log_tail.strip()[-1500:]}",
        "error_kind": "worker", "steps": len(steps), "max_steps": job.spec.max_steps,
        "progression": max((s["progression"] for s in steps), default=0.0),
        "reward_total": sum(s["reward"] for s in steps),
        "invalid_actions": sum(not s["valid"] for s in steps),
        "memory": {"chars_final": 0, "files_final": 0, "growth_chars_per_step": 0.0, "writes": 0,
                   "searches": 0, "reads": 0, "write_to_search_ratio": None,
                   "consult_before_write": None, "refused_ops": 0},
        "tokens": {"prompt": 0, "completion": 0},
        "time_s": {"env": 0.0, "model": 0.0, "scaffold": 0.0, "harness": 0.0, "total": 0.0},
        "spec": asdict(job.spec),
    }  # fmt: skip
