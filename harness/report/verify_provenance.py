"""Checks of what run.json says was run against the records that carry the same facts.

run.json names the model, its endpoint, the adapter and its hash, the runtime and the
submission; the same facts are in the options it was started with, in every chat call (the
model that answered, the adapter), in each episode's job file and, for the docker runtime, in
the sandbox's own job file. One edited fact disagrees with the others.
"""

from __future__ import annotations

from pathlib import Path

from harness.runs.jobs import is_scored
from harness.runs.launches import read_launches
from harness.runs.read import Run
from harness.runs.records import EpisodeRecord, MismatchRecord, RunRecord, StepRecord

EMBEDDED = "embedded"
LAUNCHES_SINCE = (1, 9)  # episodes record each launch of their worker (runs.launches)
JOB_FILES = ("job.json", "worker.log")  # what the scheduler writes for every episode it launched


def launch_problems(folder: Path, episode: EpisodeRecord) -> list[MismatchRecord]:
    """launches.jsonl: one valid line per launch, numbered from 1, the last one ending as the episode did."""
    try:
        launches = read_launches(folder)
    except (ValueError, TypeError) as broken:  # a line that is no launch record
        return [_problem(episode.key, f"launches.jsonl is not a list of launches: {str(broken)[:300]}")]
    if not launches:
        return [_problem(episode.key, "launches.jsonl is missing (the scheduler writes a line for every launch)")]
    numbers = [launch.launch for launch in launches]
    if numbers != list(range(1, len(launches) + 1)):
        return [_problem(episode.key, f"launches.jsonl numbers its launches {numbers}")]
    ended = episode.status if is_scored(episode) else f"{episode.error_kind}: {episode.error}"
    if launches[-1].outcome != ended[: len(launches[-1].outcome)] or not launches[-1].outcome:
        return [_problem(episode.key, f"the last launch ended {launches[-1].outcome[:120]!r}, but episode.json "
                                      f"says {ended[:120]!r}")]  # fmt: skip
    return []


def _problem(where: str, problem: str) -> MismatchRecord:
    return MismatchRecord(episode=where, step=None, problem=problem)


def run_problems(record: RunRecord) -> list[MismatchRecord]:
    """run.json against its own options and servers."""
    problems = []
    options, model = record.options, record.model
    if options:
        if options.get("model") not in (None, model.endpoint):
            problems.append(_problem("run.json", f"model.endpoint is {model.endpoint!r}, but the run was started "
                                                 f"with --model {options.get('model')!r}"))  # fmt: skip
        if options.get("model_name") and options["model_name"] != model.name:
            problems.append(_problem("run.json", f"model.name is {model.name!r}, but the run asked for --model-name "
                                                 f"{options['model_name']!r}"))  # fmt: skip
        if options.get("runtime") not in (None, record.runtime):
            problems.append(_problem("run.json", f"runtime is {record.runtime!r}, but the run was started with "
                                                 f"--runtime {options.get('runtime')!r}"))  # fmt: skip
    if (record.runtime == "docker") != (record.isolation is not None):
        problems.append(_problem("run.json", f"runtime {record.runtime!r} with isolation {record.isolation!r}: "
                                             "only the docker runtime records a sandbox"))  # fmt: skip
    urls = [server.get("url") for server in record.servers]
    if model.endpoint != EMBEDDED and urls and model.endpoint not in urls:
        problems.append(_problem("run.json", f"model.endpoint {model.endpoint!r} is not among the servers the run "
                                             f"used ({', '.join(map(str, urls))})"))  # fmt: skip
    if model.endpoint == EMBEDDED and any(not server.get("log") for server in record.servers):
        problems.append(_problem("run.json", "model.endpoint says embedded, but a server has no log of its own"))
    if model.adapter and model.adapter_hash and not model.adapter.endswith(model.adapter_hash.removeprefix("sha256:")[:12]):
        problems.append(_problem("run.json", f"model.adapter {model.adapter!r} is not served under the name its hash "
                                             f"{model.adapter_hash} gives"))  # fmt: skip
    if bool(model.adapter) != bool(model.adapter_hash):
        problems.append(_problem("run.json", "model.adapter and model.adapter_hash must be given together"))
    return problems


def call_problems(key: str, steps: list[StepRecord], record: RunRecord) -> list[MismatchRecord]:
    """Every chat call against run.json: the model that answered, the adapter and its routines."""
    model = record.model
    specialist_names = {model.adapter, f"{model.name}+{model.adapter}"} if model.adapter else set()
    for step in steps:
        for index, call in enumerate(step.llm_calls):
            if call.error is not None:
                continue  # nothing answered
            where = f"step {step.index} call {index}"
            if call.adapter is None:
                if model.adapter and call.routine in model.adapter_routines:
                    return [MismatchRecord(episode=key, step=step.index, problem=f"{where}: routine {call.routine!r} "
                                           f"belongs to the adapter {model.adapter!r}, but the base model answered")]  # fmt: skip
                if call.model != model.name:
                    return [MismatchRecord(episode=key, step=step.index, problem=f"{where}: answered by {call.model!r}, "
                                           f"but run.json says the model is {model.name!r}")]  # fmt: skip
            elif call.adapter != model.adapter or call.model not in specialist_names or call.routine not in model.adapter_routines:
                return [MismatchRecord(episode=key, step=step.index, problem=f"{where}: answered by {call.model!r} with "
                                       f"adapter {call.adapter!r} for routine {call.routine!r}, but run.json says the "
                                       f"adapter {model.adapter!r} answers {model.adapter_routines}")]  # fmt: skip
    return []


def file_problems(run: Run, folder: Path, episode: EpisodeRecord) -> list[MismatchRecord]:
    """The files the scheduler and the runtime write for every episode they launched."""
    key = episode.key
    problems = [_problem(key, f"{name} is missing (the scheduler writes it for every episode it launches)")
                for name in JOB_FILES if not (folder / name).is_file()]  # fmt: skip
    if tuple(int(part) for part in episode.schema_version.split(".")) >= LAUNCHES_SINCE:
        problems += launch_problems(folder, episode)
    sandboxed = (folder / "job.container.json").is_file()
    if sandboxed != (run.record.runtime == "docker"):
        problems.append(_problem(key, f"run.json says runtime {run.record.runtime!r}, but the episode "
                                      f"{'has' if sandboxed else 'has no'} sandbox job file (job.container.json)"))  # fmt: skip
    return problems
