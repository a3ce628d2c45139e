"""verify's re-execution: the submission's code plays each episode again against its recorded answers.

A playback model server answers the chat calls of an episode, in order, with the answers the
run recorded (text, tool calls, finish reason, token counts; a refused request with its
error). The submission, found by the content hash run.json records, plays the episode again on
its seed, through the same scheduler, game process and recorder as a run, in the runtime the
run used (a container when it ran sandboxed). Its new trace must be the recorded one: every
observation, answer, action and valid flag, every chat request (messages, tools, sampling,
choices), every memory operation and the tool call that caused it, the scaffold's state, the
episode's end. The first difference of each episode is named. What the playback hands back
unchanged (token counts, the model's id) and what it cannot reproduce (latencies) stay
claims of the run: verify says so.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.agent.state_slots import state_identity
from harness.agent.submission import content_hash
from harness.models.router import ModelConfig
from harness.models.scripted import ScriptedAnswer, ScriptedModelServer
from harness.runs.jobs import EpisodeSpec, is_scored
from harness.runs.read import Run, call_input, call_tools, read_episode, read_messages, read_steps
from harness.runs.records import EpisodeRecord, LLMCall, MismatchRecord, StepRecord
from harness.runs.scheduler import EpisodeJob, Scheduler

RERUN_SINCE = (1, 6)  # JSON-mode tool-call ids became the step's own then: older runs cannot replay exactly
STEP_FIELDS = ("observation", "action", "raw_action", "valid", "reward", "done", "truncated", "progression",
               "memory_chars")  # fmt: skip
CALL_FIELDS = ("routine", "adapter", "output", "tool_calls", "finish_reason", "tool_mode", "choices", "sampling",
               "error_kind")  # fmt: skip


class Playback:
    """The recorded answers of the episode being replayed, served in order (a Responder)."""

    def __init__(self) -> None:
        self._calls: list[LLMCall] = []
        self._position = 0
        self._lock = threading.Lock()

    def load(self, steps: list[StepRecord]) -> None:
        with self._lock:
            self._calls = [call for step in steps for call in step.llm_calls]
            self._position = 0

    def __call__(self, request: dict[str, Any]) -> ScriptedAnswer:
        with self._lock:
            position, self._position = self._position, self._position + 1
        if position >= len(self._calls):
            return ScriptedAnswer(status=400, error=f"playback: the run recorded {len(self._calls)} chat calls in this "
                                                    f"episode; the submission made a call number {position + 1}")  # fmt: skip
        call = self._calls[position]
        if call.error is not None:  # a refused request is refused again (400: the scaffold's, as recorded)
            return ScriptedAnswer(status=400 if call.error_kind == "request" else 503, error=call.error)
        message: dict[str, Any] = {"content": call.output}
        if call.tool_mode != "json" and call.tool_calls:
            message["tool_calls"] = call.tool_calls
        return ScriptedAnswer(message, {"prompt_tokens": call.prompt_tokens, "completion_tokens": call.completion_tokens},
                              call.finish_reason, call.model)  # fmt: skip


def rerun_version_ok(episode: EpisodeRecord) -> bool:
    major, _, minor = episode.schema_version.partition(".")
    return (int(major), int(minor or 0)) >= RERUN_SINCE


def find_submission(run: Run, given: Path | None) -> tuple[Path | None, str]:
    """The submission folder holding the files the run recorded (by content hash), and where
    it looked; `given` first, then run.json's folder, then submissions/<name>."""
    wanted = run.record.submission.hash
    candidates = [given] if given else [Path(run.record.submission.directory), Path("submissions") / run.record.submission.name]
    looked = []
    for candidate in candidates:
        if candidate is not None and candidate.is_dir():
            found = content_hash(candidate)
            if found == wanted:
                return candidate.resolve(), ""
            looked.append(f"{candidate} holds {found}")
        elif candidate is not None:
            looked.append(f"{candidate} does not exist")
    return None, "; ".join(looked)


def _model_config(run: Run, url: str) -> ModelConfig:
    """The run's model set-up pointed at the playback server. The embedded model's specialist
    was a second server with its own alias; vLLM serves the adapter by its name on one server."""
    model = run.record.model
    specialist_url = specialist_model = None
    if model.adapter:
        embedded = model.endpoint == "embedded"
        specialist_url = url if embedded else None
        specialist_model = f"{model.name}+{model.adapter}" if embedded else model.adapter
    return ModelConfig(base_url=url, model=model.name, kind=model.kind or "openai", adapter=model.adapter,
                       specialist_model=specialist_model, specialist_url=specialist_url,
                       adapter_routines=tuple(model.adapter_routines), max_retries=0, timeout_s=120.0)  # fmt: skip


@contextmanager
def _runtime(run: Run, key: str) -> Iterator[Any]:
    from harness.runtime import get_runtime

    runtime = get_runtime("docker" if run.record.runtime == "docker" else "local", run_id=key)
    try:
        yield runtime
    finally:
        runtime.close()


def rerun_episodes(run: Run, submission: Path, episodes: list[EpisodeRecord]) -> Iterator[tuple[EpisodeRecord, Path]]:
    """Play each scored episode again against its recorded answers; yields (episode, folder of
    the new trace). The folders are removed when the iteration ends."""
    from harness.agent.submission import read_submission

    answers = read_submission(submission).answers  # the submission's rule, not what episode.json says
    playback = Playback()
    scratch = Path(tempfile.mkdtemp(prefix="harness-verify-"))
    try:
        with ScriptedModelServer(playback, model_name=run.record.model.name, owned_by=_owner(run)) as server, \
                _runtime(run, f"verify-{scratch.name.rsplit('-', 1)[-1]}") as runtime:  # fmt: skip
            scheduler = Scheduler(runtime, workers=1, show_progress=False, max_consecutive_failures=0, attempts=1)
            model = _model_config(run, server.url)
            for number, episode in enumerate(episodes):
                if not is_scored(episode):
                    continue
                playback.load(run.steps(episode))
                folder = scratch / str(number)
                spec = EpisodeSpec(**{**episode.spec, "episode_dir": str(folder), "env_address": None, "answers": answers})
                scheduler.run([EpisodeJob(spec, str(submission), model)])
                yield episode, folder
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _owner(run: Run) -> str:
    """What the playback server says owns its model, so the client takes it for the same kind."""
    return {"vllm": "vllm", "llamacpp": "llamacpp"}.get(run.record.model.kind or "", "scripted")


def _call_view(call: LLMCall, messages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    view = {name: getattr(call, name) for name in CALL_FIELDS}
    view["messages"] = call_input(call, messages) if call.input.get("messages") else []
    view["tools"] = call_tools(call, messages)
    return view


def _ops_view(step: StepRecord) -> list[dict[str, Any]]:
    return [op.model_dump(mode="json") for op in step.memory_ops]


def first_difference(recorded: list[StepRecord], recorded_messages: dict[str, dict[str, Any]],
                     again: list[StepRecord], again_messages: dict[str, dict[str, Any]]) -> tuple[int | None, str] | None:  # fmt: skip
    """(step, what differs) between the recorded trace and the re-executed one, or None."""
    for old, new in zip(recorded, again):
        for name in STEP_FIELDS:
            if getattr(old, name) != getattr(new, name):
                return old.index, (f"{name} is {str(getattr(old, name))[:80]!r} in the run, "
                                   f"{str(getattr(new, name))[:80]!r} when the submission plays again")  # fmt: skip
        was_state = state_identity(old.scaffold_state, old.scaffold_state_sha256)
        if was_state != state_identity(new.scaffold_state, new.scaffold_state_sha256):
            return old.index, "the scaffold's state after it differs from the recorded one (scaffold_state)"
        if len(old.llm_calls) != len(new.llm_calls):
            return old.index, f"the run records {len(old.llm_calls)} chat calls, the submission makes {len(new.llm_calls)}"
        for index, (a, b) in enumerate(zip(old.llm_calls, new.llm_calls)):
            was, now = _call_view(a, recorded_messages), _call_view(b, again_messages)
            for key in was:
                if was[key] != now[key]:
                    return old.index, (f"chat call {index} ({a.routine}): its {key} differs from the recorded one "
                                       f"(recorded {str(was[key])[:120]!r}, now {str(now[key])[:120]!r})")  # fmt: skip
        if _ops_view(old) != _ops_view(new):
            pairs = list(zip(_ops_view(old), _ops_view(new)))
            which = next((i for i, (x, y) in enumerate(pairs) if x != y), len(pairs))
            return old.index, f"memory operation {which} differs from the recorded one"
    if len(recorded) != len(again):
        return None, f"the run records {len(recorded)} steps, the submission plays {len(again)}"
    return None


def rerun_problems(run: Run, given: Path | None, warnings: list[str]) -> list[MismatchRecord]:
    """Re-execute every scored episode of `run`; the mismatches found."""
    episodes = run.episodes()
    if not all(rerun_version_ok(episode) for episode in episodes):
        warnings.append("recorded before 1.6: the submission is not re-executed (its tool-call ids cannot be "
                        "reproduced); only the records are checked")  # fmt: skip
        return []
    submission, looked = find_submission(run, given)
    if submission is None:
        return [MismatchRecord(episode="run.json", step=None, problem=f"cannot re-execute the submission: no folder "
                               f"holds the files run.json names ({run.record.submission.hash}); {looked}; give it "
                               f"with --submission DIR")]  # fmt: skip
    problems: list[MismatchRecord] = []
    try:
        problems += _compare_reruns(run, submission, episodes)
    except Exception as error:  # e.g. a sandboxed run and no container engine here: nothing is proven
        problems.append(MismatchRecord(episode="run.json", step=None, problem=f"cannot re-execute the submission in "
                                       f"the {run.record.runtime} runtime the run used: {type(error).__name__}: {error}"))  # fmt: skip
    return problems


def _compare_reruns(run: Run, submission: Path, episodes: list[EpisodeRecord]) -> list[MismatchRecord]:
    problems = []
    for episode, folder in rerun_episodes(run, submission, episodes):
        where = f"{episode.key} (re-executed)"
        if not (folder / "episode.json").exists():
            problems.append(MismatchRecord(episode=where, step=None, problem="the re-execution left no result"))
            continue
        again = read_episode(folder)
        found = first_difference(run.steps(episode), run.messages(episode), read_steps(folder), read_messages(folder))
        if found is not None and found[0] is None and again.status == "errored":  # it stopped short: say why
            found = None, f"{found[1]} (it ended {again.error_kind}: {str(again.error)[:300]})"
        if found is None and (again.status, again.error_kind) != (episode.status, episode.error_kind):
            found = None, (f"the episode ends {episode.status}/{episode.error_kind} in the run, {again.status}/"
                           f"{again.error_kind} when the submission plays again: {str(again.error)[:200]}")  # fmt: skip
        if found is not None:
            problems.append(MismatchRecord(episode=where, step=found[0], problem=found[1]))
    return problems


__all__ = ["Playback", "find_submission", "first_difference", "rerun_problems"]
