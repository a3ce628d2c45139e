"""The eval track: a fixed-seed evaluation of a submission (+ adapter). The building block of
the other tracks.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.agent.submission import Submission, check_submission
from harness.models.client import ChatClient, load_lora_on_vllm
from harness.models.embedded import EMBEDDED_MODEL_NAME, LlamaCppServer
from harness.models.router import ModelConfig
from harness.report.tables import run_leaderboard_markdown
from harness.runs.jobs import EpisodeSpec
from harness.runs.layout import RunDir, atomic_write_json, atomic_write_text, new_run_id
from harness.runs.results import aggregate
from harness.runs.scheduler import EpisodeJob, Interrupted, Scheduler
from harness.runs.suites import Suite, load_suite, narrow, parse_seeds
from harness.runtime import get_runtime

EMBEDDED = "embedded"


@dataclass
class EvalOptions:
    """The options of `harness eval` (same names as the CLI flags)."""

    submission: str
    suite: str = "smoke"
    env: tuple[str, ...] = ()
    seeds: str | None = None
    max_steps: int | None = None
    model: str = EMBEDDED  # "embedded" or the URL of an OpenAI-compatible server
    model_name: str | None = None
    adapter: str | None = None
    workers: int = 1
    runtime: str = "local"
    ray_address: str | None = None  # with runtime "ray": the cluster to run on
    run_id: str | None = None
    runs_dir: str = "runs"
    resume: bool = False
    step_timeout_s: float = 600.0
    show_progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # recorded in run.json (e.g. track info)


class EvalError(RuntimeError):
    """An evaluation that cannot start (bad options, a run that exists, a changed submission)."""


def harness_version() -> str:
    try:
        version = metadata.version("automem-harness")
    except metadata.PackageNotFoundError:
        version = "0+unknown"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=5).stdout.strip()  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    return f"{version}+{commit}" if commit else version


@contextmanager
def model_endpoint(options: EvalOptions, submission: Submission) -> Iterator[ModelConfig]:
    """The model servers of an evaluation: started here for `embedded`, given by URL otherwise."""
    adapter = Path(options.adapter).resolve() if options.adapter else submission.model.adapter
    routines = tuple(submission.model.adapter_routines)
    if options.model != EMBEDDED:
        client = ChatClient(options.model, options.model_name or submission.model.base)
        if adapter is not None and client.kind == "vllm":
            load_lora_on_vllm(options.model, adapter.name, str(adapter))  # no-op if already loaded
        yield ModelConfig(
            base_url=options.model,
            model=client.model,  # the name the server reports when none was given
            adapter=adapter.name if adapter else None,
            specialist_model=adapter.name if adapter else None,  # vLLM: --lora-modules NAME=...
            adapter_routines=routines,
        )
        return
    servers: list[LlamaCppServer] = []
    try:
        base = LlamaCppServer()
        servers.append(base)
        base.start()
        config = ModelConfig(base_url=base.url, model=EMBEDDED_MODEL_NAME, kind="llamacpp")
        if adapter is not None:
            from harness.train.gguf import adapter_to_gguf

            specialist = LlamaCppServer(alias=f"{EMBEDDED_MODEL_NAME}+{adapter.name}", lora_path=adapter_to_gguf(adapter))
            servers.append(specialist)
            specialist.start()
            config.specialist_url, config.adapter, config.adapter_routines = specialist.url, adapter.name, routines
        yield config
    finally:
        for server in servers:
            server.stop()


def _episode_jobs(run: RunDir, suite: Suite, submission: Submission, model: ModelConfig,
                  options: EvalOptions) -> list[EpisodeJob]:  # fmt: skip
    jobs = []
    for plan in suite.envs:
        for task in plan.tasks:
            for seed in plan.seeds:
                spec = EpisodeSpec(env=plan.env, task=task, seed=seed, max_steps=plan.max_steps,
                                   episode_dir=str(run.episode_dir(plan.env, task, seed).resolve()),
                                   step_timeout_s=options.step_timeout_s)  # fmt: skip
                jobs.append(EpisodeJob(spec, str(submission.directory), model))
    return jobs


def _prepare_run(options: EvalOptions, submission: Submission, suite: Suite) -> RunDir:
    runs_dir = Path(options.runs_dir)
    run_id = options.run_id or (None if options.resume else new_run_id(submission.name))
    if run_id is None:  # --resume without --run-id: the latest unfinished run of this submission
        candidates = sorted(p for p in runs_dir.glob("*/run.json")
                            if RunDir(p.parent).read_run().get("submission", {}).get("name") == submission.name
                            and RunDir(p.parent).read_run().get("status") != "complete")  # fmt: skip
        if not candidates:
            raise EvalError(f"nothing to resume: no unfinished run of {submission.name} in {runs_dir}")
        run_id = candidates[-1].parent.name
    run = RunDir(runs_dir / run_id)
    if run.run_file.exists():
        if not options.resume:
            raise EvalError(f"run {run_id} exists in {runs_dir}: add --resume to continue it, or choose another --run-id")
        recorded = run.read_run()
        if recorded["submission"]["hash"] != submission.content_hash:
            raise EvalError(f"the submission changed since run {run_id} started (content hash differs): "
                            "start a new run instead of resuming")  # fmt: skip
        if recorded["suite"]["envs"] != suite.to_json()["envs"]:
            raise EvalError(f"run {run_id} used other envs, tasks, seeds or step caps: resume with the same options")
    elif options.resume and options.run_id:
        raise EvalError(f"cannot resume run {run_id}: {run.run_file} does not exist")
    return run


def run_eval(options: EvalOptions) -> tuple[RunDir, dict[str, Any]]:
    """Evaluate a submission on a suite; returns the run directory and results.json."""
    submission = check_submission(options.submission)
    seeds = parse_seeds(options.seeds) if options.seeds else None
    suite = narrow(load_suite(options.suite), tuple(options.env), seeds, options.max_steps)
    run = _prepare_run(options, submission, suite)
    run.root.mkdir(parents=True, exist_ok=True)
    runtime = get_runtime(options.runtime, run_id=run.run_id, ray_address=options.ray_address)
    with model_endpoint(options, submission) as model:
        jobs = _episode_jobs(run, suite, submission, model, options)
        record = run.read_run() if run.run_file.exists() else {
            "run_id": run.run_id,
            "created": datetime.datetime.now().isoformat(timespec="seconds"),
            "harness_version": harness_version(),
            "submission": {"name": submission.name, "directory": str(submission.directory),
                           "hash": submission.content_hash,
                           "scaffold": f"{submission.scaffold_file}:{submission.scaffold_class}",
                           **({"parent": submission.extra["parent"]} if "parent" in submission.extra else {})},
            "model": {"name": model.model or EMBEDDED_MODEL_NAME,
                      "endpoint": EMBEDDED if options.model == EMBEDDED else options.model,
                      "adapter": model.adapter, "adapter_routines": list(model.adapter_routines)},
            "suite": suite.to_json(),
            "episodes_planned": len(jobs),
            "runtime": runtime.name,
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "python": platform.python_version()},
            "options": {k: v for k, v in asdict(options).items() if k not in ("show_progress",)},
        }  # fmt: skip
        record["status"] = "running"
        atomic_write_json(run.run_file, record)
        try:
            Scheduler(runtime, options.workers, options.show_progress).run(jobs)
        except Interrupted:
            record["status"] = "interrupted"
            atomic_write_json(run.run_file, record)
            results = aggregate(run)
            atomic_write_text(run.leaderboard_file, run_leaderboard_markdown(results))
            raise
        finally:
            runtime.close()
    results = aggregate(run)
    record["status"] = "complete" if results["complete"] else "incomplete"
    record["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    atomic_write_json(run.run_file, record)
    atomic_write_text(run.leaderboard_file, run_leaderboard_markdown(results))
    return run, results
