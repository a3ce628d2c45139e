"""The episode loop: one scaffold plays one seeded game; everything is recorded as it happens.

Each step: the scaffold gets a Step and answers an action (its chat calls and memory
operations are recorded on the way); an answer that is not a valid action is replaced by the
env's default action, recorded as invalid and reported to the scaffold in the next Step; the
game plays the action; one line goes to steps.jsonl. Failures end the episode as `errored`
with their kind (runs.jobs): `scaffold` (its code raised or passed the step time limit) and
`request` (the model server refused a request the scaffold built) are the submission's and
scored at the progression reached; `model` (the server failed after retries) and `env` (the
game crashed) are infrastructure, not scored, retried by `--resume`. A model failure ends the
episode even if the scaffold catches the exception. Steps already recorded are never lost.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.agent.answers import resolve_action
from harness.agent.api import Reply, Scaffold, Step, Task
from harness.agent.clock import ScaffoldClock, StepTimeout
from harness.agent.prepare import EpisodeAborted, PreparedEpisode, prepare_episode
from harness.agent.resume import Tally, invalid_action_feedback, tally_of
from harness.agent.state_slots import STATE_FIELD, StateSlots
from harness.envs import InvalidActionError
from harness.memory import Memory, MemoryLimits, MemoryOp
from harness.memory.metrics import tool_call_routines
from harness.models import ModelRouter, ModelUnavailableError
from harness.models.client import DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, ModelError
from harness.runs.derive import SamplingSeen, derived_totals
from harness.runs.jobs import INFRASTRUCTURE_ERRORS, EpisodeSpec
from harness.runs.layout import MEMORY_DIR
from harness.runs.phase import NoPhaseMarker, PhaseMarker
from harness.runs.read import MessageIndex, RecordError, iter_steps
from harness.runs.records import EpisodeRecord, validated
from harness.runs.trace import EpisodeTrace

# What scaffold code may raise that is its own failure (StepTimeout and sys.exit included).
SCAFFOLD_FAILURES = (Exception, StepTimeout, SystemExit)


class _Recorder:
    """The chat function bound to the scaffold: routes, records, and notices dead servers."""

    def __init__(self, router: ModelRouter, trace: EpisodeTrace, clock: ScaffoldClock,
                 phase: PhaseMarker | NoPhaseMarker) -> None:  # fmt: skip
        self.router, self.trace, self.clock, self.phase = router, trace, clock, phase
        self.calls: list[dict[str, Any]] = []
        # A failed chat call ends the episode even if the scaffold catches the exception:
        # kind "model" (infrastructure, unscored) or "request" (the scaffold's, scored).
        self.failure: EpisodeAborted | None = None
        self.overhead_s = 0.0  # time spent here beyond the model's own latency
        self.step_index: int | None = None  # None during reset

    def __call__(self, messages: list[dict[str, str]], routine: str = "act", **generation: Any) -> str:
        started = time.perf_counter()
        try:
            with self.clock.shielded():  # the call and its record stay together
                return self._chat(messages, routine, **generation)
        finally:
            call_time = time.perf_counter() - started
            self.overhead_s += max(0.0, call_time - (self.calls[-1]["latency_s"] if self.calls else 0.0))

    def _chat(self, messages: list[dict[str, str]], routine: str, **generation: Any) -> str:
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise TypeError("chat(messages): messages must be a list of {'role', 'content'} dicts")
        call: dict[str, Any] = {"routine": routine, "sampling": _sampling(generation)}
        if generation.get("choices"):
            call["choices"] = list(generation["choices"])
        if generation.get("tools"):
            call["tools"] = self.trace.messages.id_of_tools(list(generation["tools"]))
        try:
            self.phase.enter("model")
            with self.clock.paused():  # model calls have their own timeout
                result = self.router.chat(messages, routine, tool_call_prefix=self._tool_call_prefix(), **generation)
        except ModelError as error:
            kind = "model" if isinstance(error, ModelUnavailableError) else "request"
            self.failure = EpisodeAborted(kind, str(error))
            call["input"] = {"messages": self.trace.messages.ids_of(messages)}
            self.calls.append({**call, "model": None, "adapter": None, "output": None, "error": str(error),
                               "error_kind": kind, "prompt_tokens": 0, "completion_tokens": 0,
                               "latency_s": 0.0, "retries": error.retries})  # fmt: skip
            raise
        finally:
            self.phase.enter("scaffold")
        # the input as the server got it (json tool mode sends another form of the conversation)
        sent = result.sent_messages if result.sent_messages is not None else messages
        call["input"] = {"messages": self.trace.messages.ids_of(sent)}
        if result.tool_mode:
            call["tool_mode"] = result.tool_mode
        output = result.raw_text if result.raw_text is not None else result.text  # the model's own words
        self.calls.append({**call, "model": result.served_model or result.model, "adapter": result.adapter,
                           "output": output, "tool_calls": result.tool_calls, "finish_reason": result.finish_reason,
                           "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                           "latency_s": round(result.latency_s, 6), "retries": result.retries})  # fmt: skip
        return Reply(result.text, result.tool_calls, result.finish_reason)

    def _tool_call_prefix(self) -> str:
        """Ids for the tool calls of this call's answer (JSON tool mode), unique in the episode
        and the same in every run: the step, then the call's place in it."""
        return f"call_{'reset' if self.step_index is None else self.step_index}-{len(self.calls)}"

    def take_calls(self) -> list[dict[str, Any]]:
        calls, self.calls = self.calls, []
        return calls


def _linked_ops(ops: list[MemoryOp], calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The step's memory operations as recorded; one a tool call caused names the chat call
    (its index in the step's llm_calls) whose answer made that tool call."""
    maker = {tool_call.get("id"): index for index, call in enumerate(calls) for tool_call in call.get("tool_calls") or ()}
    records = [op.to_json() for op in ops]
    for record in records:
        if record.get("tool_call_id") in maker:
            record["call"] = maker[record["tool_call_id"]]
    return records


def _sampling(generation: dict[str, Any]) -> dict[str, Any]:
    """The generation parameters a call sent (defaults filled in), for its record."""
    sent = {k: v for k, v in generation.items() if k not in ("choices", "tools")}
    return {"max_tokens": DEFAULT_MAX_TOKENS, "temperature": DEFAULT_TEMPERATURE, **sent}


def _unplayed_step(index: int, observation: str, progression: float, calls: list[dict[str, Any]],
                   ops: list[dict[str, Any]], memory_chars: int, times: dict[str, float], started: float) -> dict[str, Any]:  # fmt: skip
    """The record of a step whose action never reached the game (the scaffold or the game failed)."""
    return {"index": index, "observation": observation, "action": None, "raw_action": None, "valid": False,
            "reward": 0.0, "done": False, "progression": progression, "llm_calls": calls, "memory_ops": ops,
            "memory_chars": memory_chars,
            "time_s": {**{key: round(value, 6) for key, value in times.items()},
                       "harness": round(_remainder(started, *times.values()), 6)}}  # fmt: skip


def run_episode(
    spec: EpisodeSpec,
    scaffold_class: type[Scaffold],
    router: ModelRouter,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    phase: PhaseMarker | NoPhaseMarker | None = None,
    prepared: PreparedEpisode | None = None,
) -> dict[str, Any]:
    """Play one episode and write its folder; returns the episode.json content. `phase`
    tells the scheduler's watchdog what the worker is doing (runs.phase); `prepared` is what
    `prepare_episode(spec)` returned, when the caller prepared the game (before the scaffold's
    import, as the worker does)."""
    started = time.perf_counter()
    phase = phase or NoPhaseMarker()
    directory = Path(spec.episode_dir)
    if prepared is None:
        phase.enter("env")
        prepared = prepare_episode(spec)
    game, continuation, aborted = prepared.game, prepared.continuation, prepared.aborted
    kept = continuation.recorded
    trace = EpisodeTrace(directory, fresh=kept is None)
    clock = ScaffoldClock(spec.step_timeout_s)
    memory = Memory(directory / MEMORY_DIR, MemoryLimits(**spec.memory_limits))
    memory.guard = clock.shielded  # a timeout never splits an operation from its record
    recorder = _Recorder(router, trace, clock, phase)
    tally, last_action, last_reward, feedback = tally_of(kept, game.spec.default_action if game else "") if kept \
        else (Tally(), None, 0.0, None)  # fmt: skip
    totals, tokens = tally.times, tally.tokens
    totals["env"] += prepared.env_s  # the game's start (and the replay of kept steps)
    # what the calls sent: the kept steps' calls were added up as they were read (agent.resume).
    # Prefix reuse is not measured here: the host measures it from the trace when it seals the
    # episode (runs.seal), as it derives every total again; doing it twice cost the worker a
    # trie update per call.
    samplings = kept.totals.sampling if kept else SamplingSeen()
    trace.step_bytes = tally.step_bytes
    steps, invalid = kept.count if kept else 0, tally.invalid
    reward_total, progression = tally.reward_total, tally.progression
    status, error, error_kind = "truncated", None, None
    current = continuation.observation
    final_observation = observation = current.text
    last_state = json.dumps(kept.state, sort_keys=True) if kept and kept.has_state else None  # stored when it changes
    slots = kept.slots if kept else StateSlots(directory)
    try:
        if aborted is not None:
            raise aborted
        assert game is not None
        task = Task(spec.env, game.spec.name, game.spec.instructions, game.spec.actions,
                    game.spec.default_action, spec.max_steps, spec.seed)  # fmt: skip
        phase.enter("scaffold")
        try:
            scaffold = scaffold_class()
            scaffold._bind(memory, recorder)
            started_reset = time.perf_counter()
            with clock.running():
                scaffold.reset(task)
                if kept is not None and kept.count:
                    scaffold.load_state(kept.state)
            totals["scaffold"] += time.perf_counter() - started_reset
        except SCAFFOLD_FAILURES as failure:
            if recorder.failure is None:
                raise EpisodeAborted("scaffold", _describe(failure, "reset")) from failure
        if recorder.failure is not None:  # reset asked the model and failed
            raise recorder.failure
        last = kept.last if kept else None
        ended = last is not None and (last.done or last.truncated)
        if ended:  # the worker was killed after the episode's last step
            status = "completed" if last.done else "truncated"  # type: ignore[union-attr]
        for index in range(steps, 0 if ended else spec.max_steps):
            step_started = time.perf_counter()
            step = Step(index, observation, task.actions, last_action, last_reward, feedback, current.short_lived)
            step_clock = time.perf_counter()
            answer: object = None
            scaffold_error: BaseException | None = None
            phase.enter("scaffold", index)
            recorder.step_index = index
            state: dict[str, Any] = {}
            try:
                with clock.running():
                    answer = scaffold.step(step)
                    last_state = _changed_state(scaffold, last_state, state)
            except SCAFFOLD_FAILURES as failure:  # recorded below with this step's calls and ops
                scaffold_error = failure
            phase.enter("harness")
            slots.keep(index, state, last_state or "")
            # The scaffold's own time excludes the model, memory operations and call recording.
            model_time, memory_time, recording_time = _take_times(recorder, memory)
            scaffold_time = max(0.0, time.perf_counter() - step_clock - model_time - memory_time - recording_time)
            calls, taken_ops = recorder.take_calls(), memory.take_ops()
            ops = _linked_ops(taken_ops, calls)
            totals["model"] += model_time
            totals["memory"] += memory_time
            totals["scaffold"] += scaffold_time
            for call in calls:
                samplings.add(call.get("sampling"))
                tokens["prompt"] += call["prompt_tokens"]
                tokens["completion"] += call["completion_tokens"]
            tally.memory.add(taken_ops, tool_call_routines(calls))
            times = {"env": 0.0, "model": model_time, "memory": memory_time, "scaffold": scaffold_time}
            if recorder.failure is not None or scaffold_error is not None:
                trace.write_step(_unplayed_step(index, observation, progression, calls, ops, memory.total_chars, times, step_started))
                steps = index + 1
                if recorder.failure is not None:  # the call's failure, even if the scaffold caught it
                    raise recorder.failure
                assert scaffold_error is not None
                raise EpisodeAborted("scaffold", _describe(scaffold_error, f"step {index}"))
            action = resolve_action(answer, task.actions, spec.answers)
            valid = action is not None
            if action is None:
                invalid += 1
                action = task.default_action
                feedback = invalid_action_feedback(answer if isinstance(answer, str) else repr(answer), action)
            else:
                feedback = None
            env_clock = time.perf_counter()
            phase.enter("env")
            try:
                result = game.step(action)
            except Exception as failure:
                # The step's model calls and memory operations happened: they are recorded, with
                # the step unplayed, so the trace, the totals and the memory folder still agree.
                times["env"] = time.perf_counter() - env_clock
                trace.write_step(_unplayed_step(index, observation, progression, calls, ops, memory.total_chars, times, step_started))
                steps = index + 1
                what = (f"the env refused its own action {action!r}" if isinstance(failure, InvalidActionError)
                        else f"the game failed at step {index}: {type(failure).__name__}")  # fmt: skip
                raise EpisodeAborted("env", f"{what}: {failure}") from failure
            env_time = time.perf_counter() - env_clock
            phase.enter("harness")
            totals["env"] += env_time
            progression = max(progression, result.progression)
            reward_total += result.reward
            trace.write_step({
                "index": index, "observation": observation, "action": action,
                "raw_action": answer if isinstance(answer, str) else repr(answer), "valid": valid,
                "reward": result.reward, "done": result.done, "truncated": result.truncated,
                "progression": progression, "llm_calls": calls, "memory_ops": ops,
                "memory_chars": memory.total_chars, **state,
                "time_s": {"env": round(env_time, 6), "model": round(model_time, 6),
                           "memory": round(memory_time, 6), "scaffold": round(scaffold_time, 6),
                           "harness": round(_remainder(step_started, env_time, model_time, memory_time, scaffold_time), 6)},
            })  # fmt: skip
            steps = index + 1
            current = result.observation
            observation = final_observation = current.text
            last_action, last_reward = action, result.reward
            if on_step is not None:
                on_step({"event": "step", "index": index, "progression": progression})
            if result.done or result.truncated:
                status = "completed" if result.done else "truncated"
                break
    except EpisodeAborted as aborted:
        status, error, error_kind = "errored", str(aborted), aborted.kind
    finally:
        phase.enter("harness")
        if game is not None:
            try:
                game.close()
            except Exception:
                pass  # a game that fails to close has nothing left to lose
    total = time.perf_counter() - started + tally.earlier_s
    harness_time = max(0.0, total - sum(totals.values()))
    trace_bytes = trace.step_bytes
    result_record = {
        "env": spec.env, "task": spec.task, "seed": spec.seed, "status": status, "error": error,
        "error_kind": error_kind, "steps": steps, "max_steps": spec.max_steps,
        "progression": progression, "reward_total": reward_total, "invalid_actions": invalid,
        "memory": tally.memory.metrics(steps, memory.total_chars, memory.file_count),
        # prefix reuse: the host's seal measures it; an unscored episode, which it leaves as it is, here
        "tokens": tokens | {"prompt_reusable": _measured_reuse(directory) if error_kind in INFRASTRUCTURE_ERRORS else None},
        "sampling": samplings.asked(),
        "time_s": {"env": round(totals["env"], 6), "model": round(totals["model"], 6),
                   "memory": round(totals["memory"], 6), "scaffold": round(totals["scaffold"], 6),
                   "harness": round(harness_time, 6), "total": round(total, 6)},
        "trace_bytes": {"total": trace_bytes.total, "first_step": trace_bytes.first, "last_step": trace_bytes.last},
        "final_observation": final_observation,
        "spec": asdict(spec),
        "resumes": continuation.resumes,
    }  # fmt: skip
    result_record = validated(EpisodeRecord, result_record)
    trace.finish(result_record)
    return result_record


def _changed_state(scaffold: Scaffold, last: str | None, into: dict[str, Any]) -> str | None:
    """Put the scaffold's state into `into` (the step record's field) when it differs from the
    last one stored; returns the state's JSON text. A state that is not JSON is the scaffold's error."""
    state = scaffold.state()
    if state is None:
        return last
    try:
        text = json.dumps(state, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise TypeError(f"Scaffold.state() must return JSON-able data: {error}") from error
    if text != last:
        into[STATE_FIELD] = state
    return text


def _measured_reuse(directory: Path) -> int | None:
    """Prefix reuse measured on the episode's trace, as the host's seal measures it (runs.derive);
    None when the trace cannot be read (scaffold code shares this process: verify then says so)."""
    try:
        with MessageIndex(directory) as messages:
            reuse: int | None = derived_totals(iter_steps(directory), messages)["tokens"]["prompt_reusable"]
            return reuse
    except (RecordError, OSError, ValueError):
        return None


def _remainder(started: float, *accounted: float) -> float:
    """The harness's share of a step so far: its wall time minus the parts accounted for.
    (Writing the step's own record falls into the episode total's harness time.)"""
    return max(0.0, time.perf_counter() - started - sum(accounted))


def _take_times(recorder: _Recorder, memory: Memory) -> tuple[float, float, float]:
    """(model, memory, recording) seconds since the last call; resets the accumulators."""
    model_time = sum(call["latency_s"] for call in recorder.calls)
    memory_time, recording_time = memory.elapsed_s, recorder.overhead_s
    memory.elapsed_s = recorder.overhead_s = 0.0
    return model_time, memory_time, recording_time


def _describe(error: BaseException, where: str) -> str:
    frames = traceback.format_exception(type(error), error, error.__traceback__)
    return f"scaffold {where} raised {type(error).__name__}: {error}\n" + "".join(frames[-6:])
