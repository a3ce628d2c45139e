"""Where a started worker's CPU goes, per step: a sampling profile (py-spy) of real episodes.

One episode per (game, agent) runs through the real eval path (fork-server worker, its game in
its own process, run directory) against the simulated server answering at once
(bench.load_server), under `py-spy record --subprocesses`. py-spy samples only threads that
are running (not those waiting on a socket), so a sample is CPU time. Each sample is put in
one part by the innermost frame of ours on its stack (library frames count for the harness
code that called them: json inside the records is "records", the HTTP stack inside the client
is "model client"); samples under the import system are start-up and left out.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tabulate import tabulate

from harness.bench.load_server import CRAFTER_SEEDS
from harness.bench.long import EpisodeSampler, Sample
from harness.bench.report import write_section

AGENTS = {"seed": "submissions/automem-seed", "balrog-naive": "submissions/balrog-naive"}
TASKS = {"crafter": "crafter", "nethack": "NetHackChallenge-v0", "minihack": "MazeWalk-15x15"}
# Crafter: a seed on which the simulated player lives the whole episode (seed 0: it dies near step 150)
SEEDS = {"crafter": CRAFTER_SEEDS[0], "nethack": 0, "minihack": 0}
RATE_HZ = 500  # samples a second: a 300-step episode gives a part of 0.1 ms a step ~15 samples

# Helpers whose frames count for the code that called them, as library code does: an LRU map
# serves the message store (prompt bookkeeping); a JSON line is a call's messages or a step's.
TRANSPARENT = re.compile(r"^harness/runs/recent\.py$|^harness/runs/trace\.py:_AppendOnlyLines")
# (part, test on the innermost frame of ours: its path, then its function name); first match wins
WORKER_PARTS: list[tuple[str, str, str]] = [
    ("model client", r"^harness/models/", ""),
    ("prompt bookkeeping", r"^harness/runs/prefix\.py", ""),
    ("prompt bookkeeping", r"^harness/runs/trace\.py", r"^(MessageStore|_key|_loaded)"),
    ("phase file", r"^harness/runs/phase\.py", ""),
    ("records", r"^harness/runs/|^harness/memory/metrics\.py", ""),
    ("memory ops", r"^harness/memory/", ""),
    ("game client", r"^harness/envs/", ""),
    ("episode loop", r"^harness/agent/", ""),
]
GAME_PARTS: list[tuple[str, str, str]] = [
    ("game: text rendering", r"_text\.py$|nle_language\.py$|gamelog\.py$", ""),
    ("game: make and reset", r"^harness/envs/", r"reset|__init__|make"),
    ("game: serving", r"^harness/envs/(server|wire)\.py$", ""),  # wire.py: the socket spin, until 2026-11-30
    ("game: step", r"^harness/envs/", ""),
]
PARTS = list(dict.fromkeys([part for part, _, _ in WORKER_PARTS] + ["scaffold code", "worker other"] +
                           [part for part, _, _ in GAME_PARTS] + ["game other"]))  # fmt: skip
_FRAME = re.compile(r"^(?P<name>.*) \((?P<path>[^():]+):\d+\)$")


def _ours(path: str) -> bool:
    return path.startswith("harness/") or "submissions/" in path or "/scaffold" in path or path.startswith("scaffold")


def _part(frames: list[tuple[str, str]], rules: list[tuple[str, str, str]], fallback: str) -> str:
    for name, path in reversed(frames):
        if not _ours(path) or TRANSPARENT.search(path) or TRANSPARENT.search(f"{path}:{name}"):
            continue
        for part, path_rule, name_rule in rules:
            if re.search(path_rule, path) and (not name_rule or re.search(name_rule, name)):
                return part
        return "scaffold code" if not path.startswith("harness/") else fallback
    return fallback


def classify(stack: str) -> str | None:
    """The part one sampled stack (py-spy's raw format, root first) belongs to; None when it is
    not a started worker's or its game's (start-up, the scheduler, the server)."""
    frames = []
    for text in stack.split(";"):
        match = _FRAME.match(text)
        if match:
            frames.append((match["name"], match["path"]))
    if any("importlib" in path for _, path in frames):
        return None
    names = {name for name, _ in frames}
    if "serve_connection" in names:  # the game's process (harness.envs.server)
        return _part(frames, GAME_PARTS, "game other")
    if "run_episode" in names:
        return _part(frames, WORKER_PARTS, "worker other")
    return None


GAME_SIDE = {part for part, _, _ in GAME_PARTS} | {"game other"}
PER_CALL = ("model client", "prompt bookkeeping")


@dataclass
class Profile:
    game: str
    agent: str
    steps: int
    calls: int
    samples: dict[str, int] = field(default_factory=dict)
    # measured CPU over sampled CPU, per process: py-spy counts a thread that waits on a quick
    # socket answer or for a core as running (1.5x a clock's figure on the model client alone),
    # so its shares are scaled to what the processes' own CPU clocks said
    worker_scale: float = 1.0
    game_scale: float = 1.0

    def sampled_ms_per_step(self, part: str) -> float:
        return 1e3 * self.samples.get(part, 0) / RATE_HZ / max(1, self.steps)

    def ms_per_step(self, part: str) -> float:
        return self.sampled_ms_per_step(part) * (self.game_scale if part in GAME_SIDE else self.worker_scale)

    def harness_ms_per_call(self) -> float:
        """What a model call costs the harness (issue 25: client, recording, prefix bookkeeping):
        the model client and the prompt bookkeeping, over the calls."""
        return sum(self.ms_per_step(part) for part in PER_CALL) * self.steps / max(1, self.calls)

    def beyond_calls_and_game_ms_per_step(self) -> float:
        """The worker's own CPU per step less what its calls cost and its game client: what the
        harness adds per step (scaffold code excluded: the submission's)."""
        worker = list(dict.fromkeys(part for part, _, _ in WORKER_PARTS)) + ["worker other"]
        return sum(self.ms_per_step(part) for part in worker if part not in (*PER_CALL, "game client"))


def tally(raw: str) -> dict[str, int]:
    samples: dict[str, int] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        part = classify(stack)
        if part is not None and count.isdigit():
            samples[part] += int(count)
    return dict(samples)


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise RuntimeError("py-spy is not installed (pip install py-spy; it is in the dev extra)")
    return found


def profile_episode(game: str, agent: str, steps: int, workdir: Path) -> Profile:
    from harness.runs.read import read_run

    raw, runs = workdir / f"{game}-{agent}.txt", workdir / "runs"
    command = [_py_spy(), "record", "--rate", str(RATE_HZ), "--subprocesses", "--format", "raw", "--output", str(raw),
               "--", sys.executable, "-m", "harness.bench.profile", game, AGENTS[agent], str(steps), str(runs)]  # fmt: skip
    with EpisodeSampler(interval_s=0.1) as sampler:
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0 or not raw.exists():
        raise RuntimeError(f"py-spy failed ({done.returncode}): {done.stderr[-2000:]}")
    recorded = read_run(next(runs.iterdir()))
    played = [step for episode in recorded.episodes() for step in recorded.steps(episode)]
    profile = Profile(game, agent, len(played), sum(len(step.llm_calls) for step in played), tally(raw.read_text()))
    _calibrate(profile, sampler.samples)
    return profile


def _calibrate(profile: Profile, samples: list[Sample]) -> None:
    """Scale the sampled parts to the CPU the worker and its game measured (their clocks read
    every 0.1 s from their first step on, the game's make and reset left out)."""
    started = [s for s in samples if s.step >= 1]
    if len(started) < 2 or started[-1].step <= started[0].step:
        return
    first, last = started[0], started[-1]
    steps = last.step - first.step
    worker_sampled = sum(profile.sampled_ms_per_step(part) for part in PARTS if part not in GAME_SIDE)
    game_sampled = sum(profile.sampled_ms_per_step(part) for part in GAME_SIDE if part != "game: make and reset")
    if worker_sampled:
        profile.worker_scale = 1e3 * (last.worker_cpu_s - first.worker_cpu_s) / steps / worker_sampled
    if game_sampled:
        profile.game_scale = 1e3 * (last.game_cpu_s - first.game_cpu_s) / steps / game_sampled


def _drive(game: str, submission: str, steps: int, runs_dir: str) -> None:
    """The profiled process: one episode through the eval path, against an instant server."""
    from harness.bench.load_server import LoadServer
    from harness.tracks.eval import EvalOptions, run_eval

    suite = Path(runs_dir).parent / f"{game}.yaml"
    suite.write_text(f"name: profile\ndescription: one episode\nenvs:\n"
                     f"  {game}: {{tasks: [{TASKS[game]}], seeds: [{SEEDS[game]}], max_steps: {steps}}}\n")  # fmt: skip
    with LoadServer(0.0, policy="survive") as server:
        run_eval(EvalOptions(submission=submission, suite=str(suite), model=server.url, workers=1, runs_dir=runs_dir,
                             run_id=f"profile-{int(time.time())}", show_progress=False))  # fmt: skip


def run_profile_benchmark(games: tuple[str, ...], agents: tuple[str, ...], steps: int, write: bool) -> list[Profile]:
    with tempfile.TemporaryDirectory(prefix="harness-profile-") as scratch:
        profiles = []
        for game in games:
            for agent in agents:
                folder = Path(scratch) / f"{game}-{agent}"
                folder.mkdir()
                profiles.append(profile_episode(game, agent, steps, folder))
    body = profile_table(profiles)
    print(body)
    if write:
        command = f"harness bench profile --games {','.join(games)} --agents {','.join(agents)} --steps {steps}"
        write_section("profile", command, body)
    return profiles


def profile_table(profiles: list[Profile]) -> str:
    headers = ["CPU ms per step"] + [f"{p.game}, {p.agent}" for p in profiles]
    rows = [[part] + [f"{p.ms_per_step(part):.2f}" for p in profiles] for part in PARTS]
    rows.append(["calls per step"] + [f"{p.calls / max(1, p.steps):.1f}" for p in profiles])
    rows.append(["measured / sampled CPU (worker, game)"] + [f"{p.worker_scale:.2f}, {p.game_scale:.2f}" for p in profiles])
    rows.append(["**harness per model call** (model client and prompt bookkeeping / calls)"] + [f"**{p.harness_ms_per_call():.2f}**" for p in profiles])
    rows.append(["**harness per step beyond calls and game**"] +
                [f"**{p.beyond_calls_and_game_ms_per_step():.2f}**" for p in profiles])  # fmt: skip
    return tabulate(rows, headers, tablefmt="github") + "\n\n" + NOTE


NOTE = (f"One episode per column (NetHack seed 0; Crafter seed {SEEDS['crafter']}, on which the simulated "
        "player lives 300 steps) through the eval path (fork-server worker, the game in its own process), "
        f"against the simulated server answering at once, sampled by py-spy at {RATE_HZ} Hz with `--subprocesses`. "
        "py-spy leaves out threads blocked in a wait but counts one waiting on a quick answer or for a core, so "
        "its figures run high; each process's parts are scaled to the CPU its own clock measured over the "
        "episode from its first step (psutil, every 0.1 s; the factor is the row `measured / sampled CPU`). A sample goes to the part of the innermost frame of "
        "ours on its stack (library code, and our helpers an LRU map and a JSON line, counts for the harness code that called it); start-up (imports) and the "
        "scheduler are left out, the game's make and reset are in. Parts: model client (request, HTTP, answer), "
        "prompt bookkeeping (a call's messages: dedup, their messages.jsonl lines, the prefix-reuse trie), records (steps, metrics), phase file "
        "(the watchdog's marker), memory ops (the sandbox), game client (the worker's end of the game's socket), "
        "episode loop (the rest of harness.agent), scaffold code (the submission's own), worker other (the "
        "interpreter between frames of ours); game: step, text rendering (and the game log), serving (its socket), "
        "make and reset. Per model call, as issue 25 counts it (client, recording, prefix bookkeeping): the model "
        "client's and the prompt bookkeeping's CPU over the calls; beyond calls and game: every worker part but "
        "those two, the game client and the scaffold's own code.")  # fmt: skip


if __name__ == "__main__":
    _drive(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
