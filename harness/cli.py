"""The `harness` command line: one entry point for every public command."""

from __future__ import annotations

from typing import Any

import click

from harness.cli_bench import bench
from harness.cli_options import eval_options, options_from
from harness.cli_power import power
from harness.cli_tracks import track
from harness.envs import ENV_NAMES


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Benchmark harness for the memory skill of LLM agents (AUTOMEM)."""


main.add_command(track)
main.add_command(power)
main.add_command(bench)


@main.command("eval")
@click.argument("submission", type=click.Path(exists=True, file_okay=False))
@eval_options
def eval_command(submission: str, **kwargs: Any) -> None:
    """Evaluate SUBMISSION (a folder with submission.yaml) on fixed seeds.

    Exits 0 only when every planned episode is scored and at least one played without
    failing; otherwise prints what failed, where, and exits 1 (the run's folder keeps
    everything recorded; --resume completes an incomplete run)."""
    import sys

    from harness.agent.submission import SubmissionError
    from harness.report.failures import failure_report, resume_summary, submission_failures
    from harness.report.tables import run_table
    from harness.runs import read_run
    from harness.runs.layout import RunDir
    from harness.runs.scheduler import Interrupted, RunStopped
    from harness.tracks.eval import EvalError, run_eval

    options = options_from(submission, kwargs)
    try:
        run, results = run_eval(options)
    except (SubmissionError, EvalError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    except Interrupted as stopped:
        raise click.ClickException(f"{stopped}") from None
    except RunStopped as stopped:
        assert stopped.run_root is not None  # run_eval names its run
        run = RunDir(stopped.run_root)
        recorded = read_run(run.root).results
        if recorded is None:
            raise click.ClickException(str(stopped)) from None
        results = recorded
    click.echo(run_table(results))
    resumed = resume_summary(run.root)
    if resumed:
        click.echo("\n" + resumed)
    click.echo(f"\nrun directory: {run.root}")
    if not results.complete:
        click.echo(failure_report(run.root), err=True)
        sys.exit(1)
    failed = submission_failures(run.root)
    if failed is not None:
        click.echo(failed[0], err=True)
        if failed[1]:  # every episode failed: not a result anyone should read as one
            sys.exit(1)


@main.command("train")
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--base", default="embedded", show_default=True, help="'embedded' or a local model folder.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Adapter folder to write.")
@click.option("--config", "config_path", default=None, type=click.Path(exists=True, dir_okay=False),
              help="LoRA config YAML (rank, alpha, dropout, target_modules, epochs, learning_rate, batch_size, max_length, seed).")
def train_command(data: str, base: str, out_dir: str, config_path: str | None) -> None:
    """Train a LoRA adapter on DATA.jsonl ({"messages", "completion"} lines) with peft."""
    import json

    from harness.train.base_model import resolve_base
    from harness.train.sft import LoraTrainingConfig, train_lora

    config = LoraTrainingConfig.from_file(config_path) if config_path else LoraTrainingConfig()
    report = train_lora(data, resolve_base(base), out_dir, config)
    click.echo(json.dumps(report, indent=2))


@main.command("leaderboard")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Write to FILE instead of printing.")
@click.option("--format", "fmt", default="md", show_default=True, type=click.Choice(["md", "csv", "json", "html"]))
@click.option("--title", default="Leaderboard", show_default=True)
@click.option("--allow-incomplete", is_flag=True, help="Show incomplete runs (marked INCOMPLETE) instead of refusing them.")
@click.option("--submissions-dir", default="submissions", show_default=True, type=click.Path(file_okay=False),
              help="The reviewed submissions: an unsandboxed run of anything else is refused.")
@click.option("--allow-unsandboxed", is_flag=True,
              help="Publish unsandboxed runs of unreviewed code too (their row says sandboxed: no).")
@click.option("--allow-unverified", is_flag=True,
              help="Show runs whose verification failed, is missing or no longer matches their files (marked NO).")
def leaderboard_command(runs: tuple[str, ...], out: str | None, fmt: str, title: str, allow_incomplete: bool,
                        submissions_dir: str, allow_unsandboxed: bool, allow_unverified: bool) -> None:  # fmt: skip
    """One row per RUN directory, sorted by overall score. Refused: incomplete runs, runs that
    `harness verify` did not pass as they are now, and runs of code nobody here reviewed that
    ran outside a container."""
    from pathlib import Path

    from harness.report.leaderboard import (
        IncompleteRunError,
        UnsandboxedRunError,
        UnverifiedRunError,
        leaderboard_rows,
        render,
    )
    from harness.runs.layout import RunDir, atomic_write_text

    base = Path(out).parent if out else None
    try:
        rows = leaderboard_rows([RunDir(Path(run)) for run in runs], base, allow_incomplete,
                                None if allow_unsandboxed else Path(submissions_dir), allow_unverified)  # fmt: skip
    except (IncompleteRunError, UnsandboxedRunError, UnverifiedRunError) as error:
        raise click.ClickException(str(error)) from error
    text = render(rows, fmt, title)
    if out:
        atomic_write_text(Path(out), text)
        click.echo(f"written {out}")
    else:
        click.echo(text)


@main.command("compare")
@click.argument("baseline", type=click.Path(exists=True, file_okay=False))
@click.argument("candidate", type=click.Path(exists=True, file_okay=False))
@click.option("--fail-if-worse", is_flag=True, help="Exit with code 1 when the candidate is significantly worse.")
@click.option("--min-delta", default=0.0, show_default=True, help="Progression (fraction) a drop must exceed to count.")
@click.option("--allow-incomplete", is_flag=True, help="Compare the scored episodes of incomplete runs too.")
@click.option("--exact", is_flag=True, help="The runs must be the same step by step (deterministic runs: a policy "
              "without a model, the embedded model at temperature 0); name each episode's first difference, exit 1.")
def compare_command(baseline: str, candidate: str, fail_if_worse: bool, min_delta: float, allow_incomplete: bool,
                    exact: bool) -> None:  # fmt: skip
    """Paired per-seed comparison of two runs (the CI regression gate). Incomplete runs are refused."""
    import sys
    from pathlib import Path

    from harness.report.compare import CompareError, compare
    from harness.runs.layout import RunDir

    if exact:
        from harness.report.exact import exact_differences
        from harness.runs.read import read_run

        found, steps = exact_differences(read_run(Path(baseline)), read_run(Path(candidate)))
        if found:
            click.echo(f"DIFFERENT: {len(found)} episodes differ from the baseline {baseline}:\n  " + "\n  ".join(found))
            sys.exit(1)
        click.echo(f"identical to the baseline step by step: {steps} steps")

    try:
        result = compare(RunDir(Path(baseline)), RunDir(Path(candidate)), min_delta, allow_incomplete)
    except CompareError as error:
        raise click.ClickException(f"cannot compare: {error}") from error
    click.echo(result.table())
    if fail_if_worse and result.verdict == "worse":
        sys.exit(1)


@main.command("verify")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--submission", default=None, type=click.Path(exists=True, file_okay=False),
              help="The submission's folder, when it is not where run.json says (found by its content hash).")
@click.option("--rerun/--no-rerun", default=True, show_default=True,
              help="Play every scored episode again with the submission's code against the recorded answers.")
def verify_command(run: str, submission: str | None, rerun: bool) -> None:
    """Replay RUN's games on their seeds, recompute every score, cross-check its provenance and
    re-execute its submission against the recorded answers; the verdict (bound to the run's
    files by their digests) goes to verification.json."""
    import sys
    from pathlib import Path

    from harness.report.verify import verify_run
    from harness.runs.layout import RunDir

    report = verify_run(RunDir(Path(run)), rerun=rerun, submission=Path(submission) if submission else None)
    for warning in report.warnings:
        click.echo(f"WARNING {warning}", err=True)
    for mismatch in report.mismatches:
        where = f" step {mismatch.step}" if mismatch.step is not None else ""
        click.echo(f"MISMATCH {mismatch.episode}{where}: {mismatch.problem}")
    click.echo(f"{'verified' if report.verified else 'NOT verified'}: {report.episodes_checked} episodes, "
               f"{report.steps_replayed} steps replayed"
               f"{', the submission re-executed' if report.reexecuted else ''}")  # fmt: skip
    click.echo("claimed, not re-derivable: " + "; ".join(report.claimed))
    if not report.verified:
        sys.exit(1)


@main.command("schema")
@click.option("--out", "out_dir", default="docs/schema", show_default=True, type=click.Path(file_okay=False),
              help="Folder to write the JSON Schemas into.")
def schema_command(out_dir: str) -> None:
    """Write the JSON Schemas of the records (run, step, episode, results, tracks)."""
    from pathlib import Path

    from harness.runs.layout import atomic_write_text
    from harness.schema import SCHEMA_VERSION, all_json_schemas

    for name, text in all_json_schemas().items():
        atomic_write_text(Path(out_dir) / name, text)
        click.echo(f"written {Path(out_dir) / name}")
    click.echo(f"schema version {SCHEMA_VERSION}")


@main.command("view")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Report folder (default: RUN/view).")
def view_command(run: str, out: str | None) -> None:
    """Write a static HTML report and trajectory viewer of RUN (opens from file://)."""
    from pathlib import Path

    from harness.report.view import build_view
    from harness.runs.layout import RunDir

    index = build_view(RunDir(Path(run)), Path(out) if out else None)
    click.echo(f"report: {index}")


@main.group()
def images() -> None:
    """Container images (images/): build what can be built here, check the GPU ones."""


@images.command("build")
@click.argument("names", nargs=-1)
def images_build(names: tuple[str, ...]) -> None:
    """Build NAMES (default: env-crafter, env-nle, agent) with the docker SDK."""
    import docker

    from harness.runtime.images import BUILDABLE, ensure_image

    client = docker.from_env()
    for name in names or BUILDABLE:
        tag, seconds = ensure_image(client, name, log=click.echo)
        click.echo(f"{tag}: " + (f"built in {seconds:.0f} s" if seconds else "up to date"))


@images.command("check")
def images_check() -> None:
    """Static checks of the GPU images (model, trainer) and compose.yaml."""
    from harness.runtime.images import check_gpu_images

    problems = check_gpu_images()
    for problem in problems:
        click.echo(problem)
    if problems:
        raise click.ClickException(f"{len(problems)} problems")
    click.echo("model, trainer and compose.yaml: ok")


@main.group()
def model() -> None:
    """The embedded model server."""


@model.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--lora", "lora_path", default=None, type=click.Path(exists=True), help="A LoRA adapter (GGUF, or a PEFT folder to convert).")
@click.option("--n-ctx", default=8192, show_default=True, help="Context length in tokens.")
def model_serve(host: str, port: int, lora_path: str | None, n_ctx: int) -> None:
    """Serve the embedded model (SmolLM2-135M-Instruct, llama.cpp) over the OpenAI API."""
    import time
    from pathlib import Path

    from harness.models.embedded import LlamaCppServer

    lora = Path(lora_path) if lora_path else None
    if lora is not None and lora.is_dir():
        from harness.train.gguf import adapter_to_gguf

        lora = adapter_to_gguf(lora)
    server = LlamaCppServer(host=host, port=port, lora_path=lora, n_ctx=n_ctx)
    url = server.start()
    click.echo(f"embedded model serving on {url} (Ctrl-C stops it)")
    try:
        while server.process is not None and server.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@main.group()
def env() -> None:
    """Game environments: serve one over TCP, or list their tasks."""


@env.command("serve")
@click.argument("env_name", metavar="ENV", type=click.Choice(ENV_NAMES))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=0, show_default=True, help="TCP port (0: any free port).")
@click.option("--unix", default=None, help="Serve on this Unix socket path instead of TCP.")
@click.option("--episode", default=None, metavar="TASK:SEED",
              help="Play this one episode for the first client of --unix, then exit (one reset, no other task or seed).")
@click.option("--game-log", default=None, help="With --episode: the game's own log (JSON lines), kept by this process.")
@click.option("--observation", default="balrog", show_default=True, help="With --episode: the observation text variant.")
@click.option("--instructions", default="balrog", show_default=True, help="With --episode: the instructions variant.")
def env_serve(env_name: str, host: str, port: int, unix: str | None, episode: str | None, game_log: str | None,
              observation: str, instructions: str) -> None:  # fmt: skip
    """Serve ENV (one game instance per connection, newline-delimited JSON)."""
    from harness.envs.base import TextVariant
    from harness.envs.server import EpisodeBinding, serve, serve_episode

    if episode is None:
        serve(env_name, host, port, unix=unix)
        return
    task, _, seed = episode.rpartition(":")
    if not (unix and game_log and task and seed.lstrip("-").isdigit()):
        raise click.UsageError("--episode TASK:SEED needs --unix PATH and --game-log FILE")
    serve_episode(env_name, EpisodeBinding(task, int(seed), TextVariant(observation, instructions), game_log), unix)


@env.command("list")
def env_list() -> None:
    """List the envs and their tasks."""
    from harness.envs import tasks_of

    for name in ENV_NAMES:
        click.echo(f"{name}: {', '.join(tasks_of(name))}")


if __name__ == "__main__":
    main()
