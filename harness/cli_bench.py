"""`harness bench ...`: the benchmarks; each writes its figures into docs/benchmarks.md."""

from __future__ import annotations

import click


@click.group()
def bench() -> None:
    """Benchmarks; figures go to docs/benchmarks.md."""


@bench.command("envs")
@click.option("--steps", default=2000, show_default=True, help="Steps per game and mode.")
@click.option("--write/--no-write", default=True, show_default=True,
              help="Write the figures into docs/benchmarks.md.")  # fmt: skip
def bench_envs(steps: int, write: bool) -> None:
    """Raw steps/s of each game in-process and through the env server."""
    from harness.bench.envs import run_env_benchmark

    run_env_benchmark(steps=steps, write=write)


@bench.command("runtimes")
@click.option("--steps", default=50, show_default=True, help="Steps per episode.")
@click.option("--write/--no-write", default=True, show_default=True, help="Write the figures into docs/benchmarks.md.")
def bench_runtimes(steps: int, write: bool) -> None:
    """Episode start and time per step: docker runtime against local (needs a container engine)."""
    from harness.bench.runtimes import run_runtime_benchmark

    run_runtime_benchmark(steps, write)


@bench.command("eval")
@click.option("--instant-steps", default=200, show_default=True, help="Steps per game with the instant server.")
@click.option("--embedded-steps", default=10, show_default=True, help="Steps per game with the embedded model.")
@click.option("--write/--no-write", default=True, show_default=True, help="Write the figures into docs/benchmarks.md.")
def bench_eval(instant_steps: int, embedded_steps: int, write: bool) -> None:
    """Time per step split env / model / memory / scaffold / harness; trace bytes per step."""
    from harness.bench.eval import run_eval_benchmark

    run_eval_benchmark(instant_steps, embedded_steps, write)


@bench.command("calibrate")
@click.option("--seeds", default=500, show_default=True, help="Crafter seeds (0..N-1) the random agent plays.")
@click.option("--workers", default=2, show_default=True, help="Episodes run in parallel.")
@click.option("--write/--no-write", default=True, show_default=True, help="Write the figures into docs/benchmarks.md.")
def bench_calibrate(seeds: int, workers: int, write: bool) -> None:
    """Our Crafter against its authors': the random agent's 22 achievement rates and episode
    length beside the published ones, each tested (Holm over the 22)."""
    from harness.bench.calibrate import run_calibration

    calibration = run_calibration(seeds, workers, write)
    if calibration.differing():
        raise click.ClickException(f"our Crafter differs from its authors' on: {', '.join(calibration.differing())}")


@bench.command("chaos")
@click.option("--write/--no-write", default=True, show_default=True, help="Write the figures into docs/benchmarks.md.")
def bench_chaos(write: bool) -> None:
    """A suite under faults (workers, env servers, the model server, the harness, a Ray node
    killed) on the local runtime and a local multi-node Ray cluster, against an undisturbed run."""
    from harness.bench.chaos import run_chaos_benchmark

    run_chaos_benchmark(write)


@bench.command("scale")
@click.option("--games", default="crafter,nethack", show_default=True, help="Games, comma-separated.")
@click.option("--counts", default="1,8,32,64", show_default=True, help="Episodes in parallel, comma-separated.")
@click.option("--steps", default=60, show_default=True, help="Steps per episode.")
@click.option("--latency", default=0.2, show_default=True, help="Seconds the simulated server takes per call.")
@click.option("--starts", default="spawn,fork", show_default=True, help="Worker start methods to compare, comma-separated.")
@click.option("--long-steps", default=300, show_default=True,
              help="Also run 32 episodes of this many steps per game (start-up amortized); 0: not.")
@click.option("--agents", default="seed", show_default=True, help="Agents (seed, balrog-naive), comma-separated.")
@click.option("--write/--no-write", default=True, show_default=True, help="Write the figures into docs/benchmarks.md.")
def bench_scale(games: str, counts: str, steps: int, latency: float, starts: str, long_steps: int, agents: str,
                write: bool) -> None:  # fmt: skip
    """N episodes in parallel against a simulated server: steps/s against the ideal, requests
    in flight, harness CPU per step, memory per worker, start time."""
    from harness.bench.scale import run_scale_benchmark

    run_scale_benchmark(tuple(games.split(",")), tuple(int(n) for n in counts.split(",")), steps, latency,
                        tuple(starts.split(",")), long_steps, write, tuple(agents.split(",")))  # fmt: skip


@bench.command("profile")
@click.option("--games", default="crafter,nethack", show_default=True, help="Games, comma-separated.")
@click.option("--agents", default="seed,balrog-naive", show_default=True, help="Agents (seed, balrog-naive), comma-separated.")
@click.option("--steps", default=300, show_default=True, help="Steps per episode.")
@click.option("--write/--no-write", default=True, show_default=True, help="Write the figures into docs/benchmarks.md.")
def bench_profile(games: str, agents: str, steps: int, write: bool) -> None:
    """Where a started worker's CPU goes per step (py-spy): model client, prompt bookkeeping,
    records, memory ops, phase file, game, text rendering."""
    from harness.bench.profile import run_profile_benchmark

    run_profile_benchmark(tuple(games.split(",")), tuple(agents.split(",")), steps, write)


@bench.command("long")
@click.option("--nethack-steps", default=100_000, show_default=True, help="Steps of the NetHack episode (0: none).")
@click.option("--crafter-steps", default=10_000, show_default=True, help="Steps of the Crafter episode (0: none).")
@click.option("--resume-at", default=50_000, show_default=True,
              help="Kill the worker at this step and time its resume (0: never).")
@click.option("--write/--no-write", default=True, show_default=True, help="Write the figures into docs/benchmarks.md.")
def bench_long(nethack_steps: int, crafter_steps: int, resume_at: int, write: bool) -> None:
    """One long episode per game: a worker's CPU per step and memory at 1k, 10k, 50k, 100k steps."""
    from harness.bench.long import run_long_benchmark

    run_long_benchmark(nethack_steps, crafter_steps, write, resume_at)
