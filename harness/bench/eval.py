"""Time per step split into env / model / memory / scaffold / harness, and trace size per step.

Two model servers in one run: an instant scripted server (the harness's own overhead shows
plainly) and the embedded CPU model (the share a real run pays). The reference scaffold
automem-fixed-slots (3 chat calls, 2-3 memory operations a step) plays each game through the real eval path (worker processes, run directory).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from tabulate import tabulate

from harness.bench.report import write_section
from harness.models.scripted import ScriptedModelServer, first_choice_or
from harness.runs.read import read_run
from harness.tracks.eval import EMBEDDED, EvalOptions, run_eval

SUBMISSION = "submissions/automem-fixed-slots"
PARTS = ("env", "model", "memory", "scaffold", "harness")


def _suite(path: Path, steps: int) -> str:
    path.write_text(
        "name: bench\ndescription: one episode per game\nenvs:\n"
        f"  crafter: {{tasks: [crafter], seeds: [0], max_steps: {steps}}}\n"
        f"  minihack: {{tasks: [MazeWalk-15x15], seeds: [0], max_steps: {steps}}}\n"
        f"  nethack: {{tasks: [NetHackChallenge-v0], seeds: [0], max_steps: {steps}}}\n"
    )
    return str(path)


def _measure(model: str, steps: int, workdir: Path, label: str) -> tuple[list[list[Any]], list[list[Any]]]:
    options = EvalOptions(submission=SUBMISSION, suite=_suite(workdir / f"{label}.yaml", steps), model=model,
                          runs_dir=str(workdir / "runs"), run_id=label, show_progress=False)  # fmt: skip
    run, _ = run_eval(options)
    time_rows, trace_rows = [], []
    recorded = read_run(run.root)
    for episode in recorded.episodes():
        played = max(1, episode.steps)
        split = {part: getattr(episode.time_s, part) / played * 1e3 for part in PARTS}
        total = sum(split.values())
        time_rows.append([label, episode.env, episode.steps, *(f"{split[p]:.3f}" for p in PARTS),
                          f"{total:.2f}", f"{100 * split['harness'] / total:.2f}%"])  # fmt: skip
        folder = recorded.episode_folder(episode)
        lines = [len(line.encode()) for line in (folder / "steps.jsonl").read_text().splitlines()]
        quarter = max(1, len(lines) // 4)
        messages = len(recorded.messages(episode))
        trace_rows.append([label, episode.env, len(lines), round(statistics.mean(lines[:quarter])),
                           round(statistics.mean(lines[-quarter:])), messages,
                           round(episode.trace_bytes.total / played)])  # fmt: skip
    return time_rows, trace_rows


def run_eval_benchmark(instant_steps: int = 200, embedded_steps: int = 10, write: bool = True) -> None:
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as scratch:
        workdir = Path(scratch)
        with ScriptedModelServer(first_choice_or("nothing new"), owned_by="vllm") as server:
            instant_time, instant_trace = _measure(server.url, instant_steps, workdir, "instant")
        embedded_time, embedded_trace = _measure(EMBEDDED, embedded_steps, workdir, "embedded")
    time_table = tabulate(
        instant_time + embedded_time,
        headers=["model", "game", "steps", *(f"{p} ms/step" for p in PARTS), "total ms/step", "harness share"],
        tablefmt="github",
    )
    trace_table = tabulate(
        instant_trace + embedded_trace,
        headers=["model", "game", "steps", "steps.jsonl bytes/step (first quarter)",
                 "(last quarter)", "distinct messages stored", "all trace bytes/step"],
        tablefmt="github",
    )  # fmt: skip
    print(time_table + "\n\n" + trace_table)
    if write:
        note = (
            "Scaffold: submissions/automem-fixed-slots (3 chat calls and 2-3 memory operations per step). "
            "`model` is the chat latency seen by the worker, `memory` the memory operations, "
            "`scaffold` the scaffold's own code, `harness` everything else in the worker (action "
            "checks, call recording, trace writes). Targets: harness <= 0.5 ms/step with the "
            "instant server, <= 2% of a step with the embedded model; trace bytes per step that "
            "do not grow with the episode (first vs last quarter)."
        )
        write_section("eval", f"harness bench eval --instant-steps {instant_steps} --embedded-steps {embedded_steps}",
                      time_table + "\n\n" + trace_table + "\n\n" + note)  # fmt: skip
