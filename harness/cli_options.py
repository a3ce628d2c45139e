"""The evaluation options every command that runs episodes takes (`eval` and the tracks)."""

from __future__ import annotations

from typing import Any

import click

from harness.envs import ENV_NAMES
from harness.envs.base import INSTRUCTION_VARIANTS, OBSERVATION_VARIANTS

# models.keys.DEFAULT_API_KEY_ENV, written out: the env image's harness has no model client
# (importing harness.models would need openai and httpx there).
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"


def eval_options(function: Any) -> Any:
    """The evaluation options shared by `eval` and the tracks (DESIGN.md's CLI)."""
    options = [
        click.option("--suite", default="smoke", show_default=True, help="Suite name (suites/NAME.yaml) or a YAML file."),
        click.option("--env", "env_names", multiple=True, type=click.Choice(ENV_NAMES), help="Only these envs (repeatable)."),
        click.option("--seeds", default=None, help="Seeds instead of the suite's: 0-4, 1,3, or +500 (each env's own seeds shifted by 500)."),
        click.option("--max-steps", type=int, default=None, help="Step cap instead of the suite's."),
        click.option("--observation", type=click.Choice(OBSERVATION_VARIANTS), default=None,
                     help="Observation text instead of the suite's (standard: balrog, the same information as BALROG's)."),
        click.option("--instructions", type=click.Choice(INSTRUCTION_VARIANTS), default=None,
                     help="Instructions instead of the suite's (standard: balrog; tips adds our strategy tips)."),
        click.option("--model", default="embedded", show_default=True,
                     help="'embedded' (local CPU model, started here), the URL of an OpenAI-compatible server, or "
                          "'none' (no model server: any chat call is the scaffold's error; the default for a "
                          "submission whose submission.yaml says `model: none`)."),
        click.option("--model-name", default=None, help="Model name on that server (default: its first model)."),
        click.option("--api-key-env", default=DEFAULT_API_KEY_ENV, show_default=True,
                     help="Environment variable holding the server's API key (hosted APIs); the key is never recorded."),
        click.option("--adapter", default=None, type=click.Path(exists=True, file_okay=False),
                     help="PEFT LoRA folder: the memory specialist for log/recall calls."),
        click.option("--workers", default=1, show_default=True, help="Episodes run in parallel."),
        click.option("--runtime", default=None, type=click.Choice(["local", "docker", "ray"]),
                     help="Where workers run: local processes, docker containers (sandboxed), a Ray cluster "
                          "[default: local; track scaffold: docker, its candidates are code nobody reviewed]."),
        click.option("--ray-address", default=None, help="With --runtime ray: the cluster's address."),
        click.option("--worker-start", default="fork", show_default=True, type=click.Choice(["fork", "spawn"]),
                     help="With --runtime local: fork workers from a server that imported the harness and the "
                          "games once (fast), or start each as a new Python process."),
        click.option("--run-id", default=None, help="Name of the run directory (default: time + submission)."),
        click.option("--runs-dir", default="runs", show_default=True, type=click.Path(file_okay=False)),
        click.option("--resume", is_flag=True, help="Continue a run: only missing episodes are played."),
        click.option("--step-timeout", "step_timeout_s", default=600.0, show_default=True,
                     help="Seconds of its own time a scaffold may take per step (model calls excluded)."),
        click.option("--model-timeout", "model_timeout_s", default=600.0, show_default=True,
                     help="Seconds one model request may take (it is retried a few times)."),
        click.option("--env-timeout", "env_timeout_s", default=300.0, show_default=True,
                     help="Seconds one game call may take before the worker is ended from outside."),
        click.option("--episode-timeout", "episode_timeout_s", default=None, type=float,
                     help="Wall-clock seconds per episode, enforced from outside [default: 1 h or 30 s a step]."),
        click.option("--max-episode-bytes", default=2**30, show_default=True,
                     help="Bytes an episode folder may hold (trace, logs, files); past it the worker is ended "
                          "from outside and the episode is the scaffold's error (0: no limit)."),
        click.option("--max-consecutive-failures", default=3, show_default=True,
                     help="Infrastructure failures in a row after which no new episode starts (0: never stop)."),
        click.option("--attempts", default=3, show_default=True,
                     help="Launches of an episode whose worker or game died (a killed process, a lost Ray node); "
                          "each continues from the last recorded step."),
        click.option("--no-progress", is_flag=True, help="No live progress display."),
    ]  # fmt: skip
    for option in reversed(options):
        function = option(function)
    return function


def options_from(submission: str, kwargs: dict[str, Any]) -> Any:
    from harness.tracks.eval import EvalOptions

    return EvalOptions(
        submission=submission, suite=kwargs["suite"], env=tuple(kwargs["env_names"]), seeds=kwargs["seeds"],
        max_steps=kwargs["max_steps"], model=kwargs["model"], model_name=kwargs["model_name"],
        adapter=kwargs["adapter"], workers=kwargs["workers"], runtime=kwargs["runtime"] or "local", ray_address=kwargs["ray_address"],
        worker_start=kwargs["worker_start"],
        run_id=kwargs["run_id"], runs_dir=kwargs["runs_dir"], resume=kwargs["resume"],
        step_timeout_s=kwargs["step_timeout_s"], model_timeout_s=kwargs["model_timeout_s"],
        env_timeout_s=kwargs["env_timeout_s"], episode_timeout_s=kwargs["episode_timeout_s"],
        max_episode_bytes=kwargs["max_episode_bytes"],
        max_consecutive_failures=kwargs["max_consecutive_failures"], attempts=kwargs["attempts"], show_progress=not kwargs["no_progress"],
        observation=kwargs["observation"], instructions=kwargs["instructions"], api_key_env=kwargs["api_key_env"] or None,
    )  # fmt: skip
