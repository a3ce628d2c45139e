"""The eval track: a fixed-seed evaluation of a submission (+ adapter). The building block of
the other tracks.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.agent.submission import Submission, check_submission, read_submission
from harness.models.adapters import adapter_hash, load_lora_on_vllm, served_adapter_name
from harness.models.client import ChatClient, ModelError, ModelUnavailableError
from harness.models.embedded import EMBEDDED_MODEL_NAME, LlamaCppServer
from harness.models.features import FEATURES, fix_for, refused_features
from harness.models.keys import DEFAULT_API_KEY_ENV, api_key, key_is_set
from harness.models.router import NO_MODEL, ModelConfig
from harness.report.tables import run_leaderboard_markdown
from harness.runs.derive import merged_sampling
from harness.runs.jobs import EpisodeSpec, default_episode_timeout_s
from harness.runs.layout import RunDir, atomic_write_json, atomic_write_text, new_run_id
from harness.runs.provenance import DEFAULT_SAMPLING, setup_differences
from harness.runs.read import RecordError, read_run
from harness.runs.records import Results, RunRecord, validated
from harness.runs.results import aggregate
from harness.runs.scheduler import EpisodeJob, Interrupted, RunStopped, Scheduler
from harness.runs.seal import seal_episode
from harness.runs.suites import Suite, load_suite, narrow, seed_option, with_text
from harness.runtime import get_runtime, is_sandboxed
from harness.runtime.local import preload_for, run_forked, seal_forked

EMBEDDED = "embedded"


@dataclass
class EvalOptions:
    """The options of `harness eval` (same names as the CLI flags)."""

    submission: str
    suite: str = "smoke"
    env: tuple[str, ...] = ()
    seeds: str | None = None
    max_steps: int | None = None
    model: str = EMBEDDED  # "embedded", the URL of an OpenAI-compatible server, or "none" (no model calls)
    model_name: str | None = None
    adapter: str | None = None
    adapter_routines: tuple[str, ...] | None = None  # routines the adapter answers (None: the submission's)
    workers: int = 1
    runtime: str = "local"
    ray_address: str | None = None  # with runtime "ray": the cluster to run on
    worker_start: str = "fork"  # with runtime "local": fork workers from a preloaded server, or spawn them
    run_id: str | None = None
    runs_dir: str = "runs"
    resume: bool = False
    step_timeout_s: float = 600.0  # the scaffold's own time per call (model calls excluded)
    model_timeout_s: float = 600.0  # one model request (the client retries it a few times)
    env_timeout_s: float = 300.0  # one game call, enforced from outside the worker
    max_episode_bytes: int = 2**30  # an episode folder's size, enforced from outside (0: none)
    episode_timeout_s: float | None = None  # wall clock per episode (default: 1 h or 30 s a step)
    max_consecutive_failures: int = 3  # infrastructure failures in a row before no new episode starts
    attempts: int = 3  # launches of an episode whose worker or game died (runs.launches)
    api_key_env: str | None = DEFAULT_API_KEY_ENV  # the variable holding a hosted server's key (its name only is kept)
    observation: str | None = None  # text variants instead of the suite's (None: the suite's)
    instructions: str | None = None
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


@dataclass
class Endpoint:
    """The model side of a run: where workers send chat calls, and how to tell it is alive."""

    config: ModelConfig
    servers: list[dict[str, str]]  # {"url", "log"?}: named in run.json and in failure reports
    health_checks: list[Callable[[], str | None]] = field(default_factory=list)
    adapter_hash: str | None = None
    context_tokens: int | None = None  # the server's context length, where known


def answer_budget(submission: Submission, endpoint: Endpoint) -> dict[str, Any]:
    """run.json's record of the answer length the submission asks for (model.max_tokens) and
    whether the server can give it. A vLLM server whose context cannot hold that many answer
    tokens refuses every such call (HTTP 400, which would read as the scaffold's bad request):
    the run is refused before its first episode. llama.cpp caps the answer at what its context
    leaves: the run goes on and its record says so."""
    asked, context = submission.model.max_tokens, endpoint.context_tokens
    if asked is None:
        return {}
    budget: dict[str, Any] = {"submission_max_tokens": asked, "server_context_tokens": context}
    if context is not None and context <= asked:
        if endpoint.config.kind == "vllm":
            raise EvalError(f"the submission asks for answers of up to {asked} tokens (model.max_tokens), and the "
                            f"server's context holds {context}: vLLM would refuse every such call. Serve the model "
                            f"with --max-model-len above {asked} plus the prompt's length")  # fmt: skip
        budget["capped"] = (f"the server's context ({context} tokens) holds less than a prompt plus {asked} answer "
                            f"tokens: it caps each answer at what its context leaves")  # fmt: skip
    return budget


def preflight(client: ChatClient, model: str | None = None, uses: tuple[str, ...] = FEATURES) -> dict[str, str]:
    """Tiny requests before any episode: a server that lists its models but cannot answer (or
    a wrong model name, or a missing key) stops the run here, named, not as N failures; so does
    one that refuses a feature the submission uses (tools, choices: models.features), with the
    option to fix. Returns the features it refused that the submission does not use."""
    try:
        client.chat([{"role": "user", "content": "Say OK."}], model=model, max_tokens=1)
        refused = refused_features(client, model)
    except ModelError as error:
        raise EvalError(f"the model server failed a test request before any episode started: {error}") from error
    needed = [feature for feature in uses if feature in refused]
    if needed:
        raise EvalError("the model server refuses what the submission uses, so no episode is started:\n  " + "\n  ".join(
            f"{feature}: {refused[feature]}\n    fix: {fix_for(feature, client.kind)}" for feature in needed) +
            "\n  (a submission that does without declares it in submission.yaml: model.uses)")  # fmt: skip
    return refused


def _key_hint(variable: str | None) -> str:
    """Where the key came from, for a server that refused to answer (a 401 is often a key)."""
    if not variable:
        return " (no API key was sent: --api-key-env is empty)"
    state = "is set" if key_is_set(variable) else "is not set, so no key was sent"
    return f" (the API key is read from ${variable}, which {state}; choose another with --api-key-env)"


@contextmanager
def model_endpoint(options: EvalOptions, submission: Submission) -> Iterator[Endpoint]:
    """The model servers of an evaluation: started here for `embedded`, given by URL otherwise."""
    adapter = Path(options.adapter).resolve() if options.adapter else submission.model.adapter
    routines = tuple(options.adapter_routines or submission.model.adapter_routines)
    content_hash = adapter_hash(adapter) if adapter is not None else None
    if options.model == NO_MODEL:
        if adapter is not None:
            raise EvalError("an adapter needs a model server; this run has none (--model none or `model: none`)")
        yield Endpoint(ModelConfig(base_url="", model=NO_MODEL, kind=NO_MODEL, adapter_routines=routines), [], [], None, None)
        return
    if options.model != EMBEDDED:
        client = ChatClient(options.model, options.model_name or submission.model.base, timeout_s=options.model_timeout_s,
                            api_key=api_key(options.api_key_env))  # fmt: skip
        try:
            base_model, kind = client.model, client.kind
        except ModelUnavailableError as error:
            raise EvalError(f"{error}{_key_hint(options.api_key_env)}") from error
        served = None
        if adapter is not None:
            if kind != "vllm":
                raise EvalError(f"an adapter needs a vLLM server (or --model embedded); {options.model} is a {kind} server")
            try:  # registered under a name that carries its content hash
                served = load_lora_on_vllm(options.model, adapter)
            except ModelUnavailableError as error:
                raise EvalError(str(error)) from error
        refused = preflight(client, uses=submission.model.uses)
        if served:
            refused |= preflight(client, served, submission.model.uses)
        config = ModelConfig(base_url=options.model, model=base_model, kind=kind, adapter=served,
                             specialist_model=served, adapter_routines=routines, timeout_s=options.model_timeout_s,
                             api_key_env=options.api_key_env if key_is_set(options.api_key_env) else None,
                             refused_features=refused)  # fmt: skip
        yield Endpoint(config, [{"url": options.model}], [], content_hash, client.context_tokens())
        return
    servers: list[LlamaCppServer] = []
    try:
        base = LlamaCppServer()
        servers.append(base)
        base.start()
        config = ModelConfig(base_url=base.url, model=EMBEDDED_MODEL_NAME, kind="llamacpp",
                             timeout_s=options.model_timeout_s)  # fmt: skip
        if adapter is not None:
            from harness.train.gguf import adapter_to_gguf

            name = served_adapter_name(adapter, content_hash)
            specialist = LlamaCppServer(alias=f"{EMBEDDED_MODEL_NAME}+{name}", lora_path=adapter_to_gguf(adapter))
            servers.append(specialist)
            specialist.start()
            config.specialist_url, config.adapter, config.adapter_routines = specialist.url, name, routines
            config.specialist_model = specialist.alias  # named on every request (the relay sets it in sandboxes)
        for server in servers:
            config.refused_features |= preflight(ChatClient(server.url, kind="llamacpp", timeout_s=options.model_timeout_s),
                                                 uses=submission.model.uses)  # fmt: skip
        described = [{"url": server.url, "log": str(server.log_path), "cpu_features": server.cpu_features() or "?"}
                     for server in servers]  # fmt: skip
        yield Endpoint(config, described, [server.failure for server in servers], content_hash, base.n_ctx)
    finally:
        for server in servers:
            server.stop()


def _episode_jobs(run: RunDir, suite: Suite, submission: Submission, model: ModelConfig,
                  options: EvalOptions) -> list[EpisodeJob]:  # fmt: skip
    jobs = []
    for plan in suite.envs:
        for task in plan.tasks:
            for seed in plan.seeds:
                episode_timeout = (options.episode_timeout_s if options.episode_timeout_s is not None
                                   else default_episode_timeout_s(plan.max_steps))  # fmt: skip
                spec = EpisodeSpec(env=plan.env, task=task, seed=seed, max_steps=plan.max_steps,
                                   episode_dir=str(run.episode_dir(plan.env, task, seed).resolve()),
                                   step_timeout_s=options.step_timeout_s, env_timeout_s=options.env_timeout_s,
                                   max_episode_bytes=options.max_episode_bytes,
                                   episode_timeout_s=episode_timeout, observation=suite.text.observation,
                                   instructions=suite.text.instructions, answers=submission.answers)  # fmt: skip
                jobs.append(EpisodeJob(spec, str(submission.directory), model))
    return jobs


def _prepare_run(options: EvalOptions, submission: Submission, suite: Suite) -> RunDir:
    runs_dir = Path(options.runs_dir)
    run_id = options.run_id or (None if options.resume else new_run_id(submission.name))
    if run_id is None:  # --resume without --run-id: the latest unfinished run of this submission
        candidates = []
        for path in sorted(runs_dir.glob("*/run.json")):
            try:
                record = read_run(path.parent).record
            except RecordError:
                continue  # a run this harness cannot read is not one it can resume
            if record.submission.name == submission.name and record.status != "complete":
                candidates.append(path)
        if not candidates:
            raise EvalError(f"nothing to resume: no unfinished run of {submission.name} in {runs_dir}")
        run_id = candidates[-1].parent.name
    run = RunDir(runs_dir / run_id)
    if run.run_file.exists():
        if not options.resume:
            raise EvalError(f"run {run_id} exists in {runs_dir}: add --resume to continue it, or choose another --run-id")
    elif options.resume and options.run_id:
        raise EvalError(f"cannot resume run {run_id}: {run.run_file} does not exist")
    return run


def runtime_key(run: RunDir) -> str:
    """The run's name for its containers and sockets: run ids repeat across folders (a track's
    rounds are all called "run"), so the folder is part of it; two runs never sweep each other's."""
    return f"{run.run_id}-{hashlib.sha256(str(run.root.resolve()).encode()).hexdigest()[:8]}"


def run_eval(options: EvalOptions) -> tuple[RunDir, Results]:
    """Evaluate a submission on a suite; returns the run directory and results.json."""
    # in the docker runtime the scaffold is imported only inside a container, the check included
    forked = options.runtime == "local" and options.worker_start == "fork"
    seeds, offset = seed_option(options.seeds)
    suite = with_text(narrow(load_suite(options.suite), tuple(options.env), seeds, options.max_steps, offset),
                      options.observation, options.instructions)  # fmt: skip
    if forked:
        preload_for(plan.env for plan in suite.envs)  # before the submission check starts the fork server
    submission = read_submission(options.submission)
    if submission.model.none:  # it makes no model call: its runs have no model server
        if options.model not in (EMBEDDED, NO_MODEL):
            raise EvalError(f"{submission.name} makes no model call (submission.yaml: `model: none`); run it "
                            f"without --model {options.model}")  # fmt: skip
        options = replace(options, model=NO_MODEL)
    # The scaffold's import check (a child of the fork server it starts) and the model server's
    # preflight run side by side: one after the other they kept every episode waiting for both.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="check") as pool, ExitStack() as endpoints:
        checking = pool.submit(check_submission, options.submission, sandboxed=is_sandboxed(options.runtime),
                               run_in=run_forked if forked else None)  # fmt: skip
        try:
            endpoint = endpoints.enter_context(model_endpoint(options, submission))
        except BaseException:
            checking.result()  # the submission's own error first, as when the check ran first
            raise
        submission = checking.result()
        run = _prepare_run(options, submission, suite)
        run.root.mkdir(parents=True, exist_ok=True)
        runtime = get_runtime(options.runtime, run_id=runtime_key(run), ray_address=options.ray_address,
                              worker_start=options.worker_start)  # fmt: skip
        model = endpoint.config
        budget = answer_budget(submission, endpoint)
        if "capped" in budget:
            print(f"NOTE: {budget['capped']} (recorded in run.json's sampling)", file=sys.stderr)
        jobs = _episode_jobs(run, suite, submission, model, options)
        fresh = {
            "run_id": run.run_id,
            "created": datetime.datetime.now().isoformat(timespec="seconds"),
            "harness_version": harness_version(),
            "submission": {"name": submission.name, "directory": str(submission.directory),
                           "hash": submission.content_hash,
                           "scaffold": f"{submission.scaffold_file}:{submission.scaffold_class}",
                           "answers": submission.answers,
                           **({"parent": submission.extra["parent"]} if "parent" in submission.extra else {})},
            "model": {"name": model.model or EMBEDDED_MODEL_NAME,
                      "endpoint": NO_MODEL if model.kind == NO_MODEL else EMBEDDED if options.model == EMBEDDED
                      else options.model,
                      "kind": model.kind, "adapter": model.adapter, "adapter_hash": endpoint.adapter_hash,
                      "adapter_routines": list(model.adapter_routines), "refused_features": model.refused_features},
            "suite": suite.to_json(),
            "episodes_planned": len(jobs),
            "runtime": runtime.name,
            "isolation": getattr(runtime, "isolation", None),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "python": platform.python_version()},
            "options": {k: v for k, v in asdict(options).items() if k not in ("show_progress",)},
            "sampling": {**DEFAULT_SAMPLING, **budget},
        }  # fmt: skip
        record = fresh
        if run.run_file.exists():  # --resume: the same set-up, or nothing
            record = read_run(run.root).record.model_dump(mode="json")
            differences = setup_differences(record, fresh)
            if differences:
                raise EvalError(f"cannot resume run {run.run_id}: it was recorded with another set-up:\n  "
                                + "\n  ".join(differences) + "\nstart a new run (another --run-id) instead")  # fmt: skip
        record["servers"] = endpoint.servers  # this session's servers (their logs name failures)
        record["status"] = "running"
        record.pop("stop_reason", None)
        atomic_write_json(run.run_file, validated(RunRecord, record))
        scheduler = Scheduler(runtime, options.workers, options.show_progress, endpoint.health_checks,
                              options.max_consecutive_failures, options.attempts,
                              seal=seal_forked if forked else seal_episode)  # fmt: skip
        try:
            scheduler.run(jobs)
        except (Interrupted, RunStopped) as stopped:
            record["status"] = "interrupted" if isinstance(stopped, Interrupted) else "stopped"
            if isinstance(stopped, RunStopped):
                record["stop_reason"] = str(stopped)
            atomic_write_json(run.run_file, validated(RunRecord, record))
            results = aggregate(run)
            atomic_write_text(run.leaderboard_file, run_leaderboard_markdown(results))
            if isinstance(stopped, RunStopped):
                raise RunStopped(stopped.reason, run.root) from None
            raise
        finally:
            runtime.close()
    results = aggregate(run)
    record["sampling_used"] = merged_sampling(episode.sampling for episode in read_run(run.root).episodes())
    record["status"] = "complete" if results.complete else "incomplete"
    record["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    atomic_write_json(run.run_file, validated(RunRecord, record))
    atomic_write_text(run.leaderboard_file, run_leaderboard_markdown(results))
    return run, results
