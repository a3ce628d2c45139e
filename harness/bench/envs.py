"""Raw steps/s of each game in-process and through the env server, and the server's cost."""

from __future__ import annotations

import random
import statistics
import sys
import time

from tabulate import tabulate

from harness.bench.instant_env import InstantEnv
from harness.bench.report import write_section
from harness.envs import GameEnv, make_env
from harness.envs.client import EnvClient
from harness.envs.server import ServerProcess

GAMES = (("crafter", "crafter"), ("minihack", "MazeWalk-15x15"), ("nethack", "NetHackChallenge-v0"))
ROUNDS = 8  # in-process and served blocks alternate, so both see the same machine noise


def _step_latencies(game: GameEnv, actions: list[str], seed: int) -> list[float]:
    """Seconds of each step over `actions`, resetting (untimed) when an episode ends."""
    game.reset(seed)
    latencies = []
    for action in actions:
        start = time.perf_counter()
        result = game.step(action)
        latencies.append(time.perf_counter() - start)
        if result.done or result.truncated:
            seed += 1
            game.reset(seed)
    return latencies


def _instant_game_row(steps: int) -> list[object]:
    """The protocol's own cost: an instant game with a ~2 KB text, in-process vs served."""
    game = InstantEnv()
    actions = ["north", "east"] * (steps // 2)
    command = [sys.executable, "-m", "harness.bench.instant_env"]
    with ServerProcess("instant", command=command) as server:
        remote = EnvClient(server.address)
        served = _step_latencies(remote, actions, seed=0)
        remote.close()
    local = _step_latencies(game, actions, seed=0)
    local_s, served_s = statistics.median(local), statistics.median(served)
    return ["instant game (protocol only)", len(actions), round(1 / statistics.mean(local)),
            round(local_s * 1e6), round(1 / statistics.mean(served)), round(served_s * 1e6),
            round((served_s - local_s) * 1e6)]  # fmt: skip


def run_env_benchmark(steps: int = 2000, write: bool = True) -> list[list[object]]:
    rows: list[list[object]] = []
    for env_name, task in GAMES:
        local = make_env(env_name, task)
        rng = random.Random(0)
        count = steps if env_name != "crafter" else max(200, steps // 4)
        # Movement-heavy random play: what agents mostly do, and it keeps game time moving.
        moves = [name for name in local.spec.actions if name.split()[-1].lower() in ("north", "south", "east", "west")]
        block = [rng.choice(moves) for _ in range(max(1, count // ROUNDS))]
        in_process: list[float] = []
        served: list[float] = []
        with ServerProcess(env_name) as server:
            remote = EnvClient(server.address, task)
            for round_index in range(ROUNDS):
                in_process += _step_latencies(local, block, seed=round_index)
                served += _step_latencies(remote, block, seed=round_index)
            remote.close()
        local.close()
        local_s, served_s = statistics.median(in_process), statistics.median(served)
        rows.append([
            f"{env_name}/{task}", len(in_process), round(1 / statistics.mean(in_process)),
            round(local_s * 1e6), round(1 / statistics.mean(served)), round(served_s * 1e6),
            round((served_s - local_s) * 1e6),
        ])  # fmt: skip
    rows.append(_instant_game_row(steps))
    headers = ["game", "steps per mode", "in-process steps/s", "median us/step", "served steps/s",
               "served median us/step", "server overhead us/step"]  # fmt: skip
    table = tabulate(rows, headers=headers, tablefmt="github")
    print(table)
    if write:
        note = (
            "Steps include building the text observation (movement-heavy random play). Served = "
            "the same seeds and actions through `harness env serve` in a child process over "
            "loopback TCP (newline-delimited JSON). In-process and served blocks alternate "
            f"{ROUNDS} times; steps/s from mean latency, overhead = difference of the medians. "
            "The last row serves a game that answers instantly with a fixed ~2 KB text: the "
            "server's own cost (JSON both ways, one loopback round trip). Game rows also carry "
            "the slowdown of a game process that idles between requests on this virtual CPU. "
            "Target: server overhead below 150 us/step."
        )
        path = write_section("envs", f"harness bench envs --steps {steps}", table + "\n\n" + note)
        print(f"written to {path}")
    return rows
