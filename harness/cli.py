"""The `harness` command line: one entry point for every public command."""

from __future__ import annotations

import click

from harness.envs import ENV_NAMES


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Benchmark harness for the memory skill of LLM agents (AUTOMEM)."""


@main.group()
def env() -> None:
    """Game environments: serve one over TCP, or list their tasks."""


@env.command("serve")
@click.argument("env_name", metavar="ENV", type=click.Choice(ENV_NAMES))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=0, show_default=True, help="TCP port (0: any free port).")
def env_serve(env_name: str, host: str, port: int) -> None:
    """Serve ENV (one game instance per connection, newline-delimited JSON)."""
    from harness.envs.server import serve

    serve(env_name, host, port)


@env.command("list")
def env_list() -> None:
    """List the envs and their tasks."""
    from harness.envs import tasks_of

    for name in ENV_NAMES:
        click.echo(f"{name}: {', '.join(tasks_of(name))}")


@main.group()
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


if __name__ == "__main__":
    main()
