"""The cost of the docker runtime against the local one: episode start and time per step.

Both runtimes play the same episodes (automem-fixed-slots, instant scripted model); the episode's
wall time is split into the worker's start (process or containers up to the first step)
and its steps.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tabulate import tabulate

from harness.bench.report import write_section
from harness.models.scripted import ScriptedModelServer, first_choice_or
from harness.runs.read import read_steps
from harness.tracks.eval import EvalOptions, run_eval


def _measure(runtime: str, model_url: str, steps: int, workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    suite = workdir / "suite.yaml"
    suite.write_text("name: runtime-bench\nenvs:\n"
                     f"  crafter: {{tasks: [crafter], seeds: [0, 1], max_steps: {steps}}}\n"
                     f"  nethack: {{tasks: [NetHackChallenge-v0], seeds: [0, 1], max_steps: {steps}}}\n")  # fmt: skip
    started = time.monotonic()
    run, _ = run_eval(EvalOptions(submission="submissions/automem-fixed-slots", suite=str(suite), model=model_url,
                                  runtime=runtime, runs_dir=str(workdir / "runs"), run_id=runtime,
                                  show_progress=False))  # fmt: skip
    wall = time.monotonic() - started
    per_step, starts = [], []
    for folder in run.episode_dirs():
        records = read_steps(folder)
        episode_time = sum(sum(r.time_s.model_dump().values()) for r in records)
        per_step.append(episode_time / len(records))
        job_written = (folder / "job.json").stat().st_mtime
        first_step = (folder / "steps.jsonl").stat().st_mtime - episode_time
        starts.append(max(0.0, first_step - job_written))
    return {"wall": wall, "per_step_ms": 1e3 * statistics.mean(per_step), "start_s": statistics.mean(starts),
            "episodes": len(per_step)}  # fmt: skip


def run_runtime_benchmark(steps: int = 50, write: bool = True) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as scratch, \
            ScriptedModelServer(first_choice_or("nothing new"), owned_by="vllm") as model:  # fmt: skip
        results = {runtime: _measure(runtime, model.url, steps, Path(scratch) / runtime) for runtime in ("local", "docker")}
    for runtime, r in results.items():
        rows.append([runtime, r["episodes"], steps, f"{r['start_s']:.2f}", f"{r['per_step_ms']:.2f}", f"{r['wall']:.1f}"])
    overhead = results["docker"]["per_step_ms"] - results["local"]["per_step_ms"]
    table = tabulate(rows, headers=["runtime", "episodes", "steps each", "episode start s", "ms/step", "run wall s"],
                     tablefmt="github")  # fmt: skip
    text = table + f"\n\ndocker overhead per step: {overhead:+.2f} ms"
    print(text)
    if write:
        note = ("Episodes: crafter and NetHack, seeds 0-1, automem-fixed-slots on an instant scripted model. Episode start: "
                "from the job being written to the first step (a worker process; or the env container, its socket "
                "and the agent container). Per step: env + model + memory + scaffold + recording, as the trace "
                "measures it; with docker the game is served over a Unix socket and the model through the relay.")  # fmt: skip
        write_section("runtimes", f"harness bench runtimes --steps {steps}", text + "\n\n" + note)
