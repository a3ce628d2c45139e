"""`harness track scaffold|memory`: the AUTOMEM outer loops on the command line."""

from __future__ import annotations

from typing import Any

import click

from harness.cli_options import eval_options, options_from

# models.keys.DEFAULT_API_KEY_ENV, written out: the env image's harness has no model client
# (importing harness.models would need openai and httpx there).
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"


@click.group()
def track() -> None:
    """The AUTOMEM outer loops: scaffold optimization and memory-specialist training."""


def _track_options(function: Any) -> Any:
    options = [
        click.option("--meta-model", default="embedded", show_default=True, help="'embedded' or an OpenAI-compatible URL."),
        click.option("--meta-model-name", default=None, help="Model name on the meta server."),
        click.option("--meta-api-key-env", default=DEFAULT_API_KEY_ENV, show_default=True,
                     help="Environment variable holding the meta server's API key; the key is never recorded."),
        click.option("--meta-context-tokens", default=6000, show_default=True, help="Token budget of one meta prompt."),
        click.option("--leaderboards-dir", default="leaderboards", show_default=True, help="Where track rows are published ('' for nowhere)."),
        click.option("--selection-seeds", default="+500", show_default=True,
                     help="Seeds that decide (gate, best round); --seeds or the suite's are the report seeds, used for nothing else."),
        click.option("--gate", type=click.Choice(["mean", "ci"]), default="mean", show_default=True,
                     help="mean: keep a candidate whose mean progression improves (the paper); ci: only if the paired 95% CI's lower bound is above zero."),
    ]  # fmt: skip
    for option in reversed(options):
        function = option(function)
    return eval_options(function)


@track.command("scaffold")
@click.argument("submission", type=click.Path(exists=True, file_okay=False))
@click.option("--iterations", default=3, show_default=True, help="Candidates to try (K).")
@click.option("--patience", default=2, show_default=True, help="Stop after P candidates in a row without gain.")
@click.option("--repairs", default=2, show_default=True, help="Repair attempts for a candidate that fails its checks.")
@click.option("--smoke-steps", default=3, show_default=True, help="Steps of the smoke episode a candidate must survive.")
@click.option("--allow-unsandboxed", is_flag=True,
              help="Run the meta-LLM's candidates as local processes (or on ray) when no container engine answers "
                   "or --runtime local|ray is given; recorded and shown on the track's row.")
@_track_options
def track_scaffold(submission: str, iterations: int, patience: int, repairs: int, smoke_steps: int,
                   allow_unsandboxed: bool, **kwargs: Any) -> None:  # fmt: skip
    """Outer loop 1: a meta-LLM rewrites the scaffold; kept only if it passes the gate on the
    selection seeds; the gain is published on the report seeds. Candidates run in containers
    (the docker runtime) unless --allow-unsandboxed."""
    from harness.tracks.scaffold import ScaffoldTrackOptions, run_scaffold_track

    options = ScaffoldTrackOptions(
        eval=options_from(submission, kwargs), meta_model=kwargs["meta_model"], meta_model_name=kwargs["meta_model_name"],
        meta_api_key_env=kwargs["meta_api_key_env"] or None,
        iterations=iterations, patience=patience, repairs=repairs, meta_context_tokens=kwargs["meta_context_tokens"],
        smoke_steps=smoke_steps, leaderboards_dir=kwargs["leaderboards_dir"] or None,
        selection_seeds=kwargs["selection_seeds"], gate=kwargs["gate"],
        runtime=kwargs["runtime"], allow_unsandboxed=allow_unsandboxed,
    )  # fmt: skip
    root = _run_track(lambda: run_scaffold_track(options, kwargs["run_id"], kwargs["resume"]))
    click.echo((root / "lineage.md").read_text())
    click.echo(f"track folder: {root}  (best scaffold: {root / 'best'})")


@track.command("memory")
@click.argument("submission", type=click.Path(exists=True, file_okay=False))
@click.option("--trials", default=2, show_default=True, help="Trials (decision, data, adapter, evaluation).")
@click.option("--base-model", default="embedded", show_default=True, help="Model the trainer fine-tunes ('embedded' or a folder).")
@click.option("--train-seeds", default="+1000", show_default=True, help="Seeds of the trace pool (+N: the report seeds shifted by N).")
@_track_options
def track_memory(submission: str, trials: int, base_model: str, train_seeds: str, **kwargs: Any) -> None:
    """Outer loop 2: a meta-LLM selects verbatim memory responses; a LoRA specialist is trained."""
    from harness.tracks.memory import MemoryTrackOptions, run_memory_track

    options = MemoryTrackOptions(
        eval=options_from(submission, kwargs), meta_model=kwargs["meta_model"], meta_model_name=kwargs["meta_model_name"],
        meta_api_key_env=kwargs["meta_api_key_env"] or None,
        trials=trials, base_model=base_model, train_seeds=train_seeds, meta_context_tokens=kwargs["meta_context_tokens"],
        leaderboards_dir=kwargs["leaderboards_dir"] or None, selection_seeds=kwargs["selection_seeds"], gate=kwargs["gate"],
    )  # fmt: skip
    root = _run_track(lambda: run_memory_track(options, kwargs["run_id"], kwargs["resume"]))
    click.echo((root / "trials.md").read_text())
    click.echo(f"track folder: {root}  (best: {root / 'best'})")


def _run_track(run: Any) -> Any:
    from harness.agent.submission import SubmissionError
    from harness.runs.scheduler import Interrupted
    from harness.tracks.common import TrackError
    from harness.tracks.eval import EvalError
    from harness.tracks.sandbox import SandboxRefused

    try:
        return run()
    except (SubmissionError, EvalError, TrackError, SandboxRefused, ValueError) as error:
        raise click.ClickException(str(error)) from error
    except Interrupted as stopped:
        raise click.ClickException(f"{stopped} (the track resumes with --resume)") from None
