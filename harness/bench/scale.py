"""Load benchmark: N episodes in parallel against a simulated server with a fixed latency.

The seed agent (3 chat calls a step) plays N seeds of a game with N workers; the simulated
server (bench.load_server) answers each call after `latency` seconds at any concurrency, so
the ideal is N / (calls per step x latency) steps per second. Reported per (game, N): steps/s
against that ideal (per step: the ideal step time over the mean step's wall time; whole run:
steps over the wall time of the whole evaluation, start-up included), the mean number of
requests in flight, the harness's CPU per step (every process of the harness, the game's own
CPU excluded: it is measured by replaying the recorded actions alone), peak resident memory
per worker, and the time from a worker's launch to its first step.
"""

from __future__ import annotations

import datetime
import json
import statistics
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import psutil
from tabulate import tabulate

from harness.bench.load_server import CRAFTER_SEEDS, NETHACK_SEEDS, LoadServer
from harness.bench.report import write_section
from harness.envs import make_env
from harness.runs.launches import read_launches
from harness.runs.phase import read_phase
from harness.runs.read import read_run
from harness.tracks.eval import EvalOptions, run_eval

AGENTS = {"seed": ("submissions/automem-seed", 3), "balrog-naive": ("submissions/balrog-naive", 1)}  # (submission, calls a step)
LONG_EPISODES = 32  # the parallelism of the rows with longer episodes (--long-steps)
TASKS = {"crafter": "crafter", "minihack": "MazeWalk-15x15", "nethack": "NetHackChallenge-v0"}


@dataclass
class ScaleRow:
    game: str
    agent: str
    start: str  # how workers start: fork (from a preloaded server) or spawn (a new interpreter)
    episodes: int
    max_steps: int
    steps: int
    wall_s: float
    step_ratio: float  # ideal step time / mean step wall time
    run_ratio: float  # achieved steps/s / ideal steps/s, whole run
    playing_ratio: float  # the same over the playing period: the first episode call to the last request
    first_call_s_mean: float  # from the run's start to an episode's first chat call
    first_call_s_max: float
    steps_per_s: float
    ideal_per_s: float
    mean_in_flight: float
    harness_cpu_ms_per_step: float
    game_cpu_ms_per_step: float
    worker_cpu_ms_per_step: float  # a started worker's own CPU per step, its game's excluded
    server_cpu_ms_per_step: float  # the simulated server's own CPU (not the harness's): small, or it measures itself
    rss_mb_per_worker: float
    uss_mb_per_worker: float
    launch_s_mean: float  # from the run's start to an episode's (first) launch
    launch_s_max: float
    env_ms_per_step: float


class _WorkerSampler:
    """Samples the harness's worker processes (spawned: `harness.agent.worker` on their command
    line; forked: children of the fork server): each one's peak RSS and USS (the pages no
    other process shares: a forked worker shares its imports), and its CPU time against the
    step it is at (its phase file), from the first sample after its first step to its last:
    the worker's CPU per step once started, start-up excluded."""

    def __init__(self, interval_s: float = 2.0) -> None:
        self.rss: dict[int, int] = {}
        self.uss: dict[int, int] = {}
        self.first: dict[int, tuple[float, int]] = {}  # pid -> (CPU seconds, step index)
        self.last: dict[int, tuple[float, int]] = {}
        self.own_cpu_s = 0.0  # this thread's CPU (reading /proc of 64 workers): the bench's, not the harness's
        self._stop = threading.Event()
        self._interval = interval_s
        self._thread = threading.Thread(target=self._sample, daemon=True)

    # It runs in the harness's process: sampling 64 workers every 0.5 s cost 6.8 s of CPU in a 75 s
    # run, and the harness's interpreter lock with it. Every 2 s, the unique pages every 5th time.
    USS_EVERY = 5  # samples between two readings of a worker's unique pages (smaps: costly at 64 workers)

    @staticmethod
    def _is_worker(process: psutil.Process) -> bool:
        if "harness.agent.worker" in " ".join(process.cmdline()):
            return True
        parent = process.parent()
        return parent is not None and "forkserver" in " ".join(parent.cmdline())

    def _sample(self) -> None:
        me, started, rounds = psutil.Process(), time.thread_time(), 0
        kinds: dict[int, bool] = {}  # pid -> is a worker (decided once: a pid's command line stays)
        while not self._stop.wait(self._interval):
            self.own_cpu_s = time.thread_time() - started
            rounds += 1
            for child in me.children(recursive=True):
                try:
                    if child.pid not in kinds:
                        kinds[child.pid] = self._is_worker(child)
                    if not kinds[child.pid]:
                        continue
                    phase = read_phase(Path(child.cwd()))
                    if phase is None:  # not an episode's worker (a seal, runtime.local.seal_forked), or not yet
                        continue
                    self.rss[child.pid] = max(self.rss.get(child.pid, 0), child.memory_info().rss)
                    if rounds % self.USS_EVERY == 1 or child.pid not in self.uss:
                        self.uss[child.pid] = max(self.uss.get(child.pid, 0), child.memory_full_info().uss)
                    cpu = sum(child.cpu_times()[:2])
                    if phase.step >= 1:
                        self.first.setdefault(child.pid, (cpu, phase.step))
                        self.last[child.pid] = (cpu, phase.step)
                except (psutil.Error, OSError):
                    continue  # ended between the listing and the reading
        self.own_cpu_s = time.thread_time() - started

    def steady_cpu_per_step(self) -> tuple[float, int]:
        """(worker CPU seconds, steps) between each worker's first and last sample."""
        cpu = sum(self.last[pid][0] - self.first[pid][0] for pid in self.first)
        steps = sum(self.last[pid][1] - self.first[pid][1] for pid in self.first)
        return cpu, steps

    def __enter__(self) -> _WorkerSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _tree_cpu_s() -> float:
    """CPU seconds of this process and all its descendants, live ones and reaped ones (a forked
    worker is reaped by the fork server: its CPU is in the server's children times)."""
    me = psutil.Process()
    total = sum(me.cpu_times()[:4])  # user, system, children_user, children_system
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:4])
        except psutil.Error:
            continue
    return total


def _game_cpu_s(env: str, task: str, seed: int, actions: list[str]) -> tuple[float, float]:
    """CPU the game alone spends on an episode, replayed: (make and reset, the recorded actions)."""
    started = time.process_time()
    game = make_env(env, task)
    game.reset(seed)
    reset = time.process_time() - started
    for action in actions:
        game.step(action)
    game.close()
    return reset, time.process_time() - started - reset


def _suite(path: Path, game: str, episodes: int, steps: int) -> str:
    # seeds on which the simulated player lives (bench.load_server.CRAFTER_SEEDS, NETHACK_SEEDS),
    # so that N episodes stay busy to their last step, as the ideal counts them
    living = {"crafter": CRAFTER_SEEDS, "nethack": NETHACK_SEEDS}.get(game, ())
    chosen = living[:episodes] if episodes <= len(living) else range(episodes)
    seeds = ", ".join(str(seed) for seed in chosen)
    path.write_text(f"name: scale\ndescription: load benchmark\nenvs:\n"
                    f"  {game}: {{tasks: [{TASKS[game]}], seeds: [{seeds}], max_steps: {steps}}}\n")  # fmt: skip
    return str(path)


def _launch_s(folder: Path, run_started: float) -> float:
    """From the run's start to the episode's first launch."""
    launches = read_launches(folder)
    return datetime.datetime.fromisoformat(launches[0].started).timestamp() - run_started if launches else 0.0


def measure(game: str, episodes: int, steps: int, latency_s: float, workdir: Path, start: str = "fork",
            agent: str = "seed") -> ScaleRow:  # fmt: skip
    """One configuration; run it in a fresh process (`measured`): the fork server's one-time
    start and the CPU totals then belong to this configuration alone."""
    label = f"{game}-{agent}-{episodes}x{steps}-{start}"
    submission, calls_per_step = AGENTS[agent]
    with LoadServer(latency_s, policy="survive") as server:
        options = EvalOptions(submission=submission, suite=_suite(workdir / f"{label}.yaml", game, episodes, steps),
                              model=server.url, workers=episodes, runs_dir=str(workdir / "runs"), run_id=label,
                              show_progress=False, step_timeout_s=120, model_timeout_s=120, worker_start=start)  # fmt: skip
        server_before = server.stats()["cpu_s"]
        cpu_before, started, run_started = _tree_cpu_s(), time.perf_counter(), time.time()
        with _WorkerSampler() as sampler:
            run, _ = run_eval(options)
        wall = time.perf_counter() - started
        served = server.stats()
        cpu = _tree_cpu_s() - cpu_before
        served["cpu_s"] -= server_before  # the server's CPU during the run
    recorded = read_run(run.root)
    total_steps, step_walls, env_s, game_cpu, game_step_cpu, launches = 0, [], 0.0, 0.0, 0.0, []
    for episode in recorded.episodes():
        steps_done = recorded.steps(episode)
        total_steps += len(steps_done)
        for step in steps_done:
            step_walls.append(sum(getattr(step.time_s, part) for part in ("env", "model", "memory", "scaffold", "harness")))
            env_s += step.time_s.env
        launches.append(_launch_s(recorded.episode_folder(episode), run_started))
        reset_cpu, steps_cpu = _game_cpu_s(episode.env, episode.task, episode.seed, [s.action for s in steps_done if s.action])
        game_cpu += reset_cpu + steps_cpu
        game_step_cpu += steps_cpu
    # each worker's first call, as the server saw it arrive on the worker's connection
    first_calls = [moment - run_started for moment in served["first_calls"]] or [float("nan")]
    playing_s = served["last_wall"] - min(served["first_calls"]) if served["first_calls"] else float("nan")
    ideal_step = calls_per_step * latency_s
    ideal_rate = episodes / ideal_step
    # the server is our child too: its CPU is not ours, nor the sampler's
    harness_cpu = cpu - served["cpu_s"] - game_cpu - sampler.own_cpu_s
    worker_cpu, sampled_steps = sampler.steady_cpu_per_step()
    steady = (worker_cpu / sampled_steps - game_step_cpu / total_steps) if sampled_steps else float("nan")
    return ScaleRow(
        game=game, agent=agent, start=start, episodes=episodes, max_steps=steps, steps=total_steps, wall_s=wall,
        step_ratio=ideal_step / statistics.mean(step_walls), run_ratio=(total_steps / wall) / ideal_rate,
        playing_ratio=(total_steps / playing_s) / ideal_rate,
        first_call_s_mean=statistics.mean(first_calls), first_call_s_max=max(first_calls),
        steps_per_s=total_steps / wall, ideal_per_s=ideal_rate, mean_in_flight=served["mean_in_flight"],
        harness_cpu_ms_per_step=1e3 * harness_cpu / total_steps, game_cpu_ms_per_step=1e3 * game_cpu / total_steps,
        server_cpu_ms_per_step=1e3 * served["cpu_s"] / total_steps, worker_cpu_ms_per_step=1e3 * steady,
        rss_mb_per_worker=statistics.mean(sampler.rss.values()) / 2**20 if sampler.rss else 0.0,
        uss_mb_per_worker=statistics.mean(sampler.uss.values()) / 2**20 if sampler.uss else 0.0,
        launch_s_mean=statistics.mean(launches), launch_s_max=max(launches), env_ms_per_step=1e3 * env_s / total_steps,
    )  # fmt: skip


HEADERS = ["game", "agent", "workers", "N", "steps/episode", "steps", "wall s", "per step / ideal", "whole run / ideal", "playing period / ideal", "steps/s", "ideal steps/s",
           "requests in flight", "harness CPU ms/step", "of it: worker CPU ms/step once started", "game CPU ms/step", "game wall ms/step", "server CPU ms/step",
           "RSS MB/worker", "USS MB/worker", "launch s (mean)", "launch s (max)", "first call s (mean)", "first call s (max)"]  # fmt: skip


def _cells(row: ScaleRow) -> list[object]:
    return [row.game, row.agent, row.start, row.episodes, row.max_steps, row.steps, f"{row.wall_s:.1f}", f"{row.step_ratio:.2f}", f"{row.run_ratio:.2f}", f"{row.playing_ratio:.2f}",
            f"{row.steps_per_s:.1f}", f"{row.ideal_per_s:.1f}", f"{row.mean_in_flight:.1f}",
            f"{row.harness_cpu_ms_per_step:.1f}", f"{row.worker_cpu_ms_per_step:.1f}", f"{row.game_cpu_ms_per_step:.1f}", f"{row.env_ms_per_step:.1f}", f"{row.server_cpu_ms_per_step:.1f}",
            f"{row.rss_mb_per_worker:.0f}", f"{row.uss_mb_per_worker:.0f}", f"{row.launch_s_mean:.1f}", f"{row.launch_s_max:.1f}",
            f"{row.first_call_s_mean:.1f}", f"{row.first_call_s_max:.1f}"]  # fmt: skip


def measured(game: str, episodes: int, steps: int, latency_s: float, workdir: Path, start: str, agent: str) -> ScaleRow:
    """`measure` in a new interpreter of its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(measure, game, episodes, steps, latency_s, workdir, start, agent).result()


def run_scale_benchmark(games: tuple[str, ...] = ("crafter", "nethack"), counts: tuple[int, ...] = (1, 8, 32, 64),
                        steps: int = 60, latency_s: float = 0.2, starts: tuple[str, ...] = ("spawn", "fork"),
                        long_steps: int = 0, write: bool = True, agents: tuple[str, ...] = ("seed",)) -> list[ScaleRow]:  # fmt: skip
    rows: list[ScaleRow] = []
    with tempfile.TemporaryDirectory(prefix="harness-scale-") as scratch:
        for game in games:
            for agent in agents:
                for count in counts:
                    for start in starts:  # side by side: the same configuration, one start method after the other
                        rows.append(measured(game, count, steps, latency_s, Path(scratch), start, agent))
                        print(json.dumps(rows[-1].__dict__), flush=True)
                if long_steps:  # start-up amortized as in the standard suite's long episodes
                    rows.append(measured(game, LONG_EPISODES, long_steps, latency_s, Path(scratch), starts[-1], agent))
                    print(json.dumps(rows[-1].__dict__), flush=True)
    table = tabulate([_cells(row) for row in rows], headers=HEADERS, tablefmt="github")
    print(table)
    if write:
        command = (f"harness bench scale --games {','.join(games)} --counts {','.join(map(str, counts))} "
                   f"--steps {steps} --latency {latency_s} --starts {','.join(starts)} --long-steps {long_steps} "
                   f"--agents {','.join(agents)}")  # fmt: skip
        note = ("Agents: seed (submissions/automem-seed, 3 chat calls a step), balrog-naive (submissions/balrog-naive, "
                "1 call a step), against a simulated "
                f"server answering each call after {latency_s * 1e3:.0f} ms at any concurrency "
                "(its own process, TCP_NODELAY), with actions that keep the player alive (load_server.survival_answer: "
                "a NetHack hero searches in place, prays when weak and strikes back; a Crafter player drinks, eats, "
                "fights and never sleeps, its chance drawn from what it sees, so each episode plays the same at any "
                "concurrency; each game plays the seeds on which this play lives 300 steps, load_server.CRAFTER_SEEDS and NETHACK_SEEDS). Ideal = N / (calls per step x latency). "
                "`per step / ideal`: ideal step time over the mean step's wall time; `whole run / ideal`: "
                "steps over the evaluation's whole wall time (submission check, worker start-up and "
                "the last episodes' tail included); `playing period / ideal`: steps over the span from the first episode's "
                "first call to the server's last request (the harness's preflight probes before it are not play). First call: from the run's start to an "
                "episode's first chat call, as the server saw it arrive (a worker keeps one connection); launch: from "
                "the run's start to the episode's launch. Requests in flight: the server's mean over the "
                "span from first to last request. Harness CPU: every process of the harness "
                "(scheduler and workers), less the server's CPU and the game's own CPU, which is "
                "measured by replaying the recorded actions alone (start-up included: submission check, fork "
                "server, worker start); `of it: worker CPU once started` is a worker's own CPU per step from "
                "its first to its last sample (every 2 s), its game's steps excluded. RSS and USS (pages of its own): each "
                "worker's peak, averaged. `workers`: spawn = a new interpreter per episode (imports paid "
                "each time), fork = forked from a server that imported the harness and the games once "
                "(the default; `harness eval --worker-start`). Each row runs in a fresh process. "
                "Targets (issue 25): first call within 3 s and the playing period >= 0.9 of the ideal at N = 64. The ideal counts N episodes busy "
                "from start to end: episodes that end early (the player dies, random answers "
                "on a simulated server) leave fewer in flight, and the run waits for the longest "
                "(see `steps` against N x steps/episode).")  # fmt: skip
        print(f"written to {write_section('scale', command, table + chr(10) * 2 + note)}")
    return rows
