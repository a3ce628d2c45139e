"""Does a worker's cost grow with the episode? One long episode per game, sampled as it runs.

BALROG's naive agent (one call a step, a 16-step history) plays one episode through the eval
path (fork-server worker, its game in its own process) against the simulated server answering
at once. For NetHack the server answers mostly actions that take no game time, so the hero
lives through 100,000 steps (bench.load_server.long_answer). Every 0.25 s the worker and its
game process are sampled: the step they are at (the phase file), their CPU time and resident
memory. Reported at each checkpoint: CPU per step over the WINDOW steps before it, and memory.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from tabulate import tabulate

from harness.bench.load_server import LoadServer
from harness.bench.report import write_section
from harness.envs.snapshot import CLONE_NAME
from harness.runs.phase import read_phase
from harness.runs.read import read_run
from harness.runs.records import EpisodeRecord
from harness.tracks.eval import EvalOptions, run_eval

SUBMISSION = "submissions/balrog-naive"
TASKS = {"crafter": "crafter", "nethack": "NetHackChallenge-v0"}
SEEDS = {"nethack": 20, "crafter": 0}  # NetHack 20: a dwarven Valkyrie, who outlives the simulated server's play
CHECKPOINTS = (1_000, 10_000, 50_000, 100_000)
WINDOW = 500  # steps before a checkpoint over which its CPU per step is taken


@dataclass
class Sample:
    pid: int
    at_s: float  # time.monotonic()
    step: int
    worker_cpu_s: float
    worker_rss: int
    game_cpu_s: float
    game_rss: int


class EpisodeSampler:
    """The one worker running (a child of the fork server) and its game process, sampled."""

    def __init__(self, interval_s: float = 0.25, kill_at: int = 0) -> None:
        self.samples: list[Sample] = []
        self.kill_at = kill_at  # SIGKILL the worker once it is at this step (0: never)
        self.killed_at_s: float | None = None
        self._stop = threading.Event()
        self._interval = interval_s
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _worker(self) -> psutil.Process | None:
        for child in psutil.Process().children(recursive=True):
            try:
                parent = child.parent()
                if parent is not None and "forkserver" in " ".join(parent.cmdline()):
                    return child
            except psutil.Error:
                continue
        return None

    def _run(self) -> None:
        worker = None
        while not self._stop.wait(self._interval):
            try:
                worker = worker if worker is not None and worker.is_running() else self._worker()
                if worker is None:
                    continue
                phase = read_phase(Path(worker.cwd()))
                games = worker.children() or _clones()
                if phase is None or not games:
                    continue
                self.samples.append(Sample(worker.pid, time.monotonic(), phase.step, sum(worker.cpu_times()[:2]),
                                           worker.memory_info().rss, sum(games[0].cpu_times()[:2]),
                                           games[0].memory_info().rss))  # fmt: skip
                if self.kill_at and self.killed_at_s is None and phase.step >= self.kill_at:
                    worker.kill()  # as a lost machine would: the scheduler launches it again, it resumes
                    self.killed_at_s, worker = time.monotonic(), None
            except (psutil.Error, OSError):
                worker = None

    def __enter__(self) -> EpisodeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _clones() -> list[psutil.Process]:
    """A resumed worker's game when it came back from a snapshot: the holder's clone serving it
    (envs.snapshot), not the worker's child. One episode runs at a time here."""
    found = []
    for process in psutil.process_iter(["name", "create_time"]):
        if process.info["name"] == CLONE_NAME.decode():
            found.append(process)
    return sorted(found, key=lambda process: process.info["create_time"], reverse=True)


@dataclass
class Checkpoint:
    game: str
    step: int
    worker_ms_per_step: float
    game_ms_per_step: float
    worker_rss_mb: float
    game_rss_mb: float


def checkpoints(game: str, samples: list[Sample], marks: tuple[int, ...]) -> list[Checkpoint]:
    """CPU per step over the WINDOW steps before each mark the episode reached (from the samples
    nearest its ends), and memory at the mark."""
    rows = []
    for mark in marks:
        # the first worker to reach the mark, and that same worker's last sample a WINDOW before
        # it (a resumed worker starts its own CPU clock, and shows step 0 while it replays)
        at = [s for s in samples if s.step >= mark]
        if not at:
            continue
        end = at[0]
        before = [s for s in samples if s.pid == end.pid and s.at_s < end.at_s and s.step <= mark - WINDOW
                  and s.worker_cpu_s <= end.worker_cpu_s]  # fmt: skip
        if not before:
            continue
        start = before[-1]
        steps = max(1, end.step - start.step)
        rows.append(Checkpoint(game, mark, 1e3 * (end.worker_cpu_s - start.worker_cpu_s) / steps,
                               1e3 * (end.game_cpu_s - start.game_cpu_s) / steps,
                               end.worker_rss / 2**20, end.game_rss / 2**20))  # fmt: skip
    return rows


@dataclass
class Resumed:
    at_step: int
    replay_s: float  # the resumed worker's own account: reading what was recorded, replaying the game
    to_next_step_s: float  # from the kill to the next step played
    kept_steps: int
    snapshot_step: int | None  # the game came back from its snapshot at this step (None: from its reset)


def _resumed(samples: list[Sample], killed_at_s: float | None, episode: EpisodeRecord) -> Resumed | None:
    if killed_at_s is None or not episode.resumes:
        return None
    resume = episode.resumes[-1]
    after = [s for s in samples if s.at_s > killed_at_s and s.step > resume.from_step]
    return Resumed(resume.from_step, resume.replay_s, (after[0].at_s - killed_at_s) if after else float("nan"),
                   resume.recorded_steps, resume.snapshot_step)  # fmt: skip


def measure(game: str, steps: int, workdir: Path, resume_at: int = 0) -> tuple[list[Checkpoint], int, float, Resumed | None]:
    suite = workdir / f"{game}.yaml"
    suite.write_text(f"name: long\ndescription: one long episode\nenvs:\n"
                     f"  {game}: {{tasks: [{TASKS[game]}], seeds: [{SEEDS[game]}], max_steps: {steps}}}\n")  # fmt: skip
    with LoadServer(0.0, policy="long") as server, EpisodeSampler(kill_at=resume_at) as sampler:
        started = time.perf_counter()
        run, _ = run_eval(EvalOptions(submission=SUBMISSION, suite=str(suite), model=server.url, workers=1,
                                            runs_dir=str(workdir / "runs"), run_id=f"long-{game}", show_progress=False))  # fmt: skip
        wall = time.perf_counter() - started
    (episode,) = read_run(run.root).episodes()
    resumed = _resumed(sampler.samples, sampler.killed_at_s, episode)
    # an episode that ends early (the hero dies) is also shown at the last thousand it reached
    marks = tuple(sorted({*CHECKPOINTS, episode.steps // 1000 * 1000} - {0}))
    return checkpoints(game, sampler.samples, marks), episode.steps, wall, resumed


def run_long_benchmark(nethack_steps: int, crafter_steps: int, write: bool, resume_at: int = 0) -> list[Checkpoint]:
    rows: list[Checkpoint] = []
    lengths, resumes = [], []
    with tempfile.TemporaryDirectory(prefix="harness-long-") as scratch:
        for game, steps in (("nethack", nethack_steps), ("crafter", crafter_steps)):
            if steps <= 0:
                continue
            found, played, wall, resumed = measure(game, steps, Path(scratch), resume_at if resume_at < steps else 0)
            rows += found
            lengths.append(f"{game}: {played:,} of {steps:,} steps in {wall:.0f} s")
            if resumed is not None:
                restored = ("the game came back from its snapshot at step "
                            f"{resumed.snapshot_step:,} and played the {resumed.kept_steps - resumed.snapshot_step:,} "
                            "kept steps after it again" if resumed.snapshot_step is not None
                            else "the game played them again from its reset")  # fmt: skip
                resumes.append(f"{game}: the worker killed at step {resumed.at_step:,} resumed from {resumed.kept_steps:,} "
                               f"kept steps; {restored} in {resumed.replay_s:.1f} s (`replay_s`), and "
                               f"the kill to the next step played took {resumed.to_next_step_s:.1f} s (the scheduler's "
                               f"relaunch, a new worker reading the kept steps, the game's return)")  # fmt: skip
    table = tabulate([[r.game, f"{r.step:,}", f"{r.worker_ms_per_step:.2f}", f"{r.game_ms_per_step:.2f}",
                       f"{r.worker_rss_mb:.0f}", f"{r.game_rss_mb:.0f}"] for r in rows],
                     ["game", "at step", "worker CPU ms/step", "game CPU ms/step", "worker RSS MB", "game RSS MB"],
                     tablefmt="github")  # fmt: skip
    resumed_text = f" Resume: {'; '.join(resumes)}." if resumes else ""
    body = (f"{table}\n\nPlayed: {'; '.join(lengths)}.{resumed_text} One episode per game, BALROG's naive agent (one chat call a "
            f"step, a 16-step history) through the eval path, against the simulated server answering at once; for "
            f"NetHack it answers mostly actions that take no game time, a search every 30th step, a prayer when weak from hunger and blows at attackers, so the hero lives (bench.load_server.LongPlay). "
            f"CPU per step: the worker's (its game's apart) over the {WINDOW} steps before the checkpoint, sampled every "
            f"0.25 s; RSS at the checkpoint.")  # fmt: skip
    print(body)
    if write:
        write_section("long", f"harness bench long --nethack-steps {nethack_steps} --crafter-steps {crafter_steps} "
                              f"--resume-at {resume_at}", body)  # fmt: skip
    return rows
