"""Scheduling episodes over workers, with a live progress display, resume and clean Ctrl-C.

Concurrency is limited here, in one place: `workers` episodes run at once, each in its own
worker (a process of the runtime). The scheduler also watches, from outside:
- each worker's phase and wall clock (runs.watchdog): a stuck worker is ended and its episode
  attributed to whoever was stuck;
- health checks of the run's servers (an embedded model server that exits): the run stops at
  once, says why, and keeps everything recorded;
- consecutive infrastructure failures: after `max_consecutive_failures` in a row no new episode
  is launched (a dead endpoint does not burn through the whole suite).
A worker that dies without writing episode.json leaves an `errored` episode of kind `worker`
(infrastructure), built from what it recorded (runs.salvage). An episode whose worker or game
died is launched again at once, up to `attempts` launches, and continues from its last recorded
step (agent.resume); each launch is a line of its launches.jsonl (runs.launches). What is still
not scored after that is retried by `--resume`.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
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
from harness.runs.launches import (
    RELAUNCHED_KINDS,
    now_iso,
    read_launches,
    record_launch,
    recorded_steps,
)
from harness.runs.layout import EPISODE_FILE, atomic_write_json
from harness.runs.phase import PHASE_FILE, read_phase
from harness.runs.read import RecordError, read_episode
from harness.runs.records import EpisodeRecord
from harness.runs.salvage import clear_for_relaunch, salvaged_episode
from harness.runs.seal import seal_episode
from harness.runs.watchdog import Overdue, WatchLimits, overdue, oversized

HealthCheck = Callable[[], "str | None"]  # None while healthy, else what failed
WATCH_INTERVAL_S = 0.5
SIZE_INTERVAL_S = 5.0  # an episode folder's size is measured this often
RELAUNCH_PAUSE_S = 1.0  # before an episode whose worker died is launched again
MAX_EVENT_CHARS = 64 * 1024  # a progress event is a short line; longer ones are read in pieces and ignored


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

    def limits(self) -> WatchLimits:
        return WatchLimits.of(self.spec.step_timeout_s, self.model.timeout_s, self.model.max_retries,
                              self.spec.env_timeout_s, self.spec.episode_timeout_s)  # fmt: skip


def unsealed(job: EpisodeJob) -> bool:
    """A scored episode.json the host has not sealed (no `game` record), or one that cannot be
    read: the harness stopped between the worker's end and the seal, so it still holds the
    worker's claims. Sealed when the run goes on, not played again."""
    if not (job.directory / EPISODE_FILE).exists():
        return False
    try:
        episode = read_episode(job.directory)
    except (RecordError, OSError, ValueError):
        return True  # the seal names it as the scaffold's error
    return is_scored(episode) and episode.game is None


def needs_run(job: EpisodeJob) -> bool:
    """False when the episode is complete: episode.json exists and is not an infrastructure error."""
    if not (job.directory / EPISODE_FILE).exists():
        return True
    return not is_scored(read_episode(job.directory))


class Interrupted(Exception):
    """The run was stopped (Ctrl-C); everything recorded so far stays on disk."""


class RunStopped(Exception):
    """The scheduler stopped the run (a server died, or infrastructure kept failing)."""

    def __init__(self, reason: str, run_root: Path | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.run_root = run_root  # set by the evaluation that owned the run


@dataclass
class _Running:
    job: EpisodeJob
    started: float  # time.time()
    verdict: Overdue | None = None  # set when the watchdog ends the worker
    sized: float = 0.0  # when its folder was last measured (time.monotonic())


class Scheduler:
    def __init__(self, runtime: Runtime, workers: int = 1, show_progress: bool = True,
                 health_checks: Sequence[HealthCheck] = (), max_consecutive_failures: int = 3,
                 attempts: int = 3, seal: Callable[[EpisodeSpec, bool], Any] = seal_episode) -> None:  # fmt: skip
        self.runtime = runtime
        self.seal = seal  # runs.seal.seal_episode, here or in another process (runtime.local.seal_forked)
        self.workers = max(1, workers)
        self.show_progress = show_progress
        self.health_checks = list(health_checks)
        self.max_consecutive_failures = max_consecutive_failures
        self.attempts = max(1, attempts)  # launches of an episode whose worker died (runs.launches)
        self.stop_reason: str | None = None
        self._consecutive_failures = 0
        self._stop = threading.Event()
        self._running: dict[Any, _Running] = {}
        self._lock = threading.Lock()

    def run(self, jobs: Iterable[EpisodeJob]) -> list[dict[str, Any]]:
        jobs = list(jobs)
        for job in jobs:
            if unsealed(job):
                self.seal(job.spec, False)
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
                next_watch = 0.0
                for future in futures:
                    while not future.done():
                        time.sleep(0.1)  # keep the main thread awake for Ctrl-C
                        if time.monotonic() >= next_watch:
                            next_watch = time.monotonic() + WATCH_INTERVAL_S
                            self._watch()
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
        if self.stop_reason:
            raise RunStopped(self.stop_reason)
        return outcomes

    def _watch(self) -> None:
        """Health checks of the servers, then every running worker's limits."""
        for check in self.health_checks:
            failure = check()
            if failure and not self._stop.is_set():
                self.stop_reason = failure
                self._stop.set()
                self._terminate_running()
                return
        now = time.time()
        with self._lock:
            running = list(self._running.items())
        for process, state in running:
            if state.verdict is not None:
                continue
            verdict = overdue(state.job.limits(), read_phase(state.job.directory), state.started, now)
            if verdict is None and time.monotonic() - state.sized > SIZE_INTERVAL_S:
                state.sized = time.monotonic()
                verdict = oversized(state.job.directory, state.job.spec.max_episode_bytes)
            if verdict is not None:
                state.verdict = verdict
                _kill(process)

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
                _kill(process)

    def _run_one(self, job: EpisodeJob, progress: Progress, episodes_bar: Any, steps_bar: Any) -> dict[str, Any]:
        """Launch the episode's worker, and again (continuing from its recorded steps) while it
        ends with a dead process, up to `attempts` launches."""
        if self._stop.is_set():
            return {"key": job.spec.key, "status": "not started"}
        steps_seen, outcome = 0, {"key": job.spec.key, "status": "not started"}
        for launch in range(1, self.attempts + 1):
            last_launch = launch == self.attempts
            launched, seen, episode = self._launch(job, progress, steps_bar, last_launch)
            steps_seen, outcome = steps_seen + seen, launched
            relaunched = not last_launch and (episode is None and launched.get("relaunch", False)
                                              or episode is not None and episode.error_kind in RELAUNCHED_KINDS)  # fmt: skip
            if episode is not None and not relaunched:
                # only the episode's last launch counts toward the stop rule: a lost Ray node ends
                # many launches at once, each of which goes on elsewhere
                self._count_failure(episode)
            if not relaunched or self._stop.is_set():
                break
            time.sleep(RELAUNCH_PAUSE_S)
        progress.advance(steps_bar, max(0, job.spec.max_steps - steps_seen))
        progress.advance(episodes_bar)
        return outcome

    def _launch(self, job: EpisodeJob, progress: Progress, steps_bar: Any,
                last_launch: bool = True) -> tuple[dict[str, Any], int, EpisodeRecord | None]:  # fmt: skip
        """One launch of the episode's worker: (its outcome, the steps it reported, the episode
        as recorded after it, or None when the run stopped before it finished or the worker died
        and is to be launched again: the outcome then says `relaunch`)."""
        job.directory.mkdir(parents=True, exist_ok=True)
        (job.directory / EPISODE_FILE).unlink(missing_ok=True)  # an infrastructure error is retried
        job_path = job.directory / "job.json"
        atomic_write_json(job_path, job.to_json())
        state = _Running(job, time.time())
        entry: dict[str, Any] = {"launch": len(read_launches(job.directory)) + 1, "runtime": self.runtime.name,
                                 "started": now_iso(), "steps_before": recorded_steps(job.directory)}  # fmt: skip
        process = self.runtime.launch(job_path, job.directory / "worker.log")
        with self._lock:
            self._running[process] = state
        steps_seen = 0
        last: dict[str, Any] = {}
        try:
            for line in _event_lines(process.stdout):
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue  # scaffold code printing to stdout: not an event
                if event.get("event") == "step":  # one line may stand for several steps (agent.worker)
                    told = event.get("steps", 1)
                    told = min(max(told, 1), job.spec.max_steps) if isinstance(told, int) else 1  # printed by anyone
                    steps_seen += told
                    progress.advance(steps_bar, told)
                elif event.get("event") == "done":
                    last = event
            process.wait()
        finally:
            with self._lock:
                self._running.pop(process, None)
        (job.directory / PHASE_FILE).unlink(missing_ok=True)  # only meaningful while the worker runs
        if state.verdict is None:
            state.verdict = getattr(process, "verdict", None)  # a runtime's own verdict (Ray's stream)
        result_path = job.directory / EPISODE_FILE
        failure: tuple[str, str] | None = None  # (kind, message): the worker ended without its result
        if state.verdict is not None:  # ended by the watchdog: whatever it wrote is not the result
            failure = state.verdict.kind, state.verdict.message
        elif not result_path.exists() and not self._stop.is_set():
            failure = "worker", f"worker exited with code {process.returncode} before finishing: {_log_tail(job.directory)}"
        relaunch = failure is not None and failure[0] in RELAUNCHED_KINDS and not last_launch and not self._stop.is_set()
        episode = None
        if relaunch:
            # the next worker continues from the records as they are (agent.resume): an episode
            # folder without a result is an unfinished episode, whatever stops the run meanwhile.
            # Its totals are not derived here (salvaging a 32,000-step trace took 11 s a relaunch)
            result_path.unlink(missing_ok=True)
            clear_for_relaunch(job.directory)
        elif failure is not None:
            atomic_write_json(result_path, salvaged_episode(job.spec, *failure))
        if result_path.exists():
            self.seal(job.spec, failure is not None)  # the score from the game's own log, on this side
            episode = read_episode(job.directory)
        if episode is not None:
            ended = episode.status if is_scored(episode) else f"{episode.error_kind}: {episode.error}"
        else:
            ended = "stopped with the run" if failure is None else f"{failure[0]}: {failure[1]}"
        record_launch(job.directory, {**entry, "placement": _placement(process), "ended": now_iso(),
                                      "steps_after": recorded_steps(job.directory), "exit_code": process.returncode,
                                      "outcome": ended[:2000]})  # fmt: skip
        return {"key": job.spec.key, "exit_code": process.returncode, **last, "relaunch": relaunch}, steps_seen, episode

    def _count_failure(self, episode: EpisodeRecord) -> None:
        """Stop launching after K infrastructure failures in a row."""
        with self._lock:
            infrastructure = not is_scored(episode)
            self._consecutive_failures = self._consecutive_failures + 1 if infrastructure else 0
            if infrastructure and self.max_consecutive_failures > 0 \
                    and self._consecutive_failures >= self.max_consecutive_failures and not self._stop.is_set():
                self.stop_reason = (f"{self._consecutive_failures} infrastructure failures in a row, no new episode "
                                    f"launched; the last ({episode.error_kind}): {episode.error}")  # fmt: skip
                self._stop.set()


def _event_lines(stream: Any) -> Iterator[str]:
    """A worker's progress lines. A file is read in bounded lines (scaffold code can print to the
    same stream); the containers' and Ray's line iterators bound their lines themselves."""
    if hasattr(stream, "readline"):
        return iter(lambda: str(stream.readline(MAX_EVENT_CHARS)), "")
    return iter(stream)


def _log_tail(directory: Path, chars: int = 1500) -> str:
    """The end of a worker's log (read without following a link the worker may have left)."""
    log = directory / "worker.log"
    if not log.is_file() or log.is_symlink():
        return "(no worker.log)"
    with open(log, "rb") as stream:
        stream.seek(max(0, log.stat().st_size - 4 * chars))
        return stream.read().decode(errors="replace").strip()[-chars:]


def _placement(process: Any) -> dict[str, Any]:
    """Where a runtime placed a worker (a Ray node, a container), else this host and its pid."""
    placement = getattr(process, "placement", None)
    return dict(placement) if placement else {"host": socket.gethostname(), "pid": getattr(process, "pid", None)}


def _kill(process: Any) -> None:
    try:
        process.kill()
    except Exception:
        pass


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
