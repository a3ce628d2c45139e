"""The episode loop: recording, invalid actions, failures that keep what was recorded."""

import json
from pathlib import Path
from typing import Any

import pytest

from harness.agent import Scaffold, Step, Task
from harness.agent.episode import resolve_action, run_episode
from harness.memory import MemoryAccessError
from harness.memory.replay import final_memory
from harness.models import ChatClient, ModelRouter
from harness.models.embedded import free_port
from harness.models.scripted import ScriptedModelServer
from harness.runs.jobs import EpisodeSpec, is_scored
from harness.runs.layout import read_jsonl
from harness.runs.read import call_input, read_messages, read_steps
from harness.runs.records import EpisodeRecord


def _spec(tmp_path: Path, env: str = "minihack", task: str = "MazeWalk-9x9", steps: int = 5, **kw: Any) -> EpisodeSpec:
    return EpisodeSpec(env=env, task=task, seed=0, max_steps=steps, episode_dir=str(tmp_path / "episode"), **kw)


def _router(server: ScriptedModelServer) -> ModelRouter:
    return ModelRouter(ChatClient(server.url, max_retries=0))


class NoteTaker(Scaffold):
    """Consults, writes, and asks the model for an action each step."""

    def reset(self, task: Task) -> None:
        self.system = {"role": "system", "content": task.instructions}

    def step(self, step: Step) -> str:
        self.memory.search("wall")
        self.memory.append("log.md", f"step {step.index}: {step.observation[:30]}\n")
        messages = [self.system, {"role": "user", "content": step.observation}]
        return self.chat(messages, routine="act", choices=list(step.actions))


def test_a_step_records_observation_action_calls_ops_and_time(tmp_path: Path, instant_model: ScriptedModelServer) -> None:
    result = run_episode(_spec(tmp_path), NoteTaker, _router(instant_model))
    assert result["status"] == "truncated" and result["steps"] == 5
    steps = read_jsonl(tmp_path / "episode" / "steps.jsonl")
    assert [s["index"] for s in steps] == [0, 1, 2, 3, 4]
    first = steps[0]
    assert first["action"] == "north" and first["valid"] and first["raw_action"] == "north"
    assert [op["op"] for op in first["memory_ops"]] == ["search", "append"]
    call = first["llm_calls"][0]
    assert call["routine"] == "act" and call["output"] == "north" and call["prompt_tokens"] > 0
    assert set(first["time_s"]) >= {"env", "model", "memory", "scaffold", "harness"}
    assert all(value >= 0 for value in first["time_s"].values())
    assert result["memory"]["writes"] == 5 and result["memory"]["consult_before_write"] == 1.0
    assert (tmp_path / "episode" / "memory" / "log.md").read_text().count("step ") == 5
    assert json.loads((tmp_path / "episode" / "episode.json").read_text())["steps"] == 5


def test_llm_inputs_are_recoverable_verbatim_and_stored_once(tmp_path: Path, instant_model: ScriptedModelServer) -> None:
    run_episode(_spec(tmp_path, steps=4), NoteTaker, _router(instant_model))
    directory = tmp_path / "episode"
    messages = read_messages(directory)
    steps = read_steps(directory)
    for step, request in zip(steps, instant_model.requests):
        assert call_input(step.llm_calls[0], messages) == request["messages"]
    instructions = [m for m in messages.values() if m["role"] == "system"]
    assert len(instructions) == 1  # the shared prefix is stored once, not per step


def test_trace_bytes_per_step_do_not_grow_with_episode_length(tmp_path: Path, instant_model: ScriptedModelServer) -> None:
    result = run_episode(_spec(tmp_path, env="crafter", task="crafter", steps=60), NoteTaker, _router(instant_model))
    steps_file = (tmp_path / "episode" / "steps.jsonl").read_text().splitlines()
    assert len(steps_file) == 60
    early, late = sum(map(len, steps_file[5:15])), sum(map(len, steps_file[50:60]))
    assert late < 1.3 * early
    assert result["trace_bytes"]["first_step"] > result["trace_bytes"]["last_step"]  # instructions once


def test_invalid_answer_plays_the_default_and_tells_the_scaffold(tmp_path: Path, instant_model: ScriptedModelServer) -> None:
    seen: list[Step] = []

    class Confused(Scaffold):
        def step(self, step: Step) -> str:
            seen.append(step)
            return "fly away" if step.index == 0 else " NORTH "

    result = run_episode(_spec(tmp_path, steps=2), Confused, _router(instant_model))
    steps = read_jsonl(tmp_path / "episode" / "steps.jsonl")
    assert not steps[0]["valid"] and steps[0]["action"] == "north" and steps[0]["raw_action"] == "fly away"
    assert seen[1].feedback is not None and "fly away" in seen[1].feedback
    assert steps[1]["valid"] and steps[1]["action"] == "north"  # trimmed, case-insensitive
    assert result["invalid_actions"] == 1


def test_scaffold_exception_errors_the_episode_and_keeps_recorded_steps(tmp_path: Path, instant_model: ScriptedModelServer) -> None:
    class Crashes(Scaffold):
        def step(self, step: Step) -> str:
            self.memory.append("a.md", "x")
            if step.index == 3:
                raise KeyError("lost my map")
            return "east"

    result = run_episode(_spec(tmp_path, steps=10), Crashes, _router(instant_model))
    assert result["status"] == "errored" and result["error_kind"] == "scaffold"
    assert "KeyError" in result["error"] and "lost my map" in result["error"]
    steps = read_jsonl(tmp_path / "episode" / "steps.jsonl")
    assert len(steps) == 4 and steps[3]["action"] is None and steps[3]["memory_ops"][0]["op"] == "append"


def test_scaffold_timeout_errors_the_episode(tmp_path: Path, instant_model: ScriptedModelServer) -> None:
    class Slow(Scaffold):
        def step(self, step: Step) -> str:
            if step.index == 1:
                while True:
                    pass
            return "east"

    result = run_episode(_spec(tmp_path, step_timeout_s=0.5), Slow, _router(instant_model))
    assert result["status"] == "errored" and "StepTimeout" in result["error"]
    assert result["steps"] == 2


def test_dead_model_server_is_an_infrastructure_error_even_if_the_scaffold_swallows_it(tmp_path: Path) -> None:
    class Swallows(Scaffold):
        def step(self, step: Step) -> str:
            try:
                return self.chat([{"role": "user", "content": "go"}])
            except Exception:
                return "north"

    router = ModelRouter(ChatClient(f"http://127.0.0.1:{free_port()}", model="m", kind="openai", max_retries=0, timeout_s=2))
    result = run_episode(_spec(tmp_path), Swallows, router)
    assert result["status"] == "errored" and result["error_kind"] == "model"
    call = read_jsonl(tmp_path / "episode" / "steps.jsonl")[0]["llm_calls"][0]
    assert call["error"] and call["output"] is None


def test_memory_escape_is_refused_recorded_and_the_episode_goes_on(tmp_path: Path, instant_model: ScriptedModelServer) -> None:
    class Escaper(Scaffold):
        def step(self, step: Step) -> str:
            try:
                self.memory.write("../../stolen.txt", "x")
            except MemoryAccessError:
                pass
            return "south"

    result = run_episode(_spec(tmp_path, steps=3), Escaper, _router(instant_model))
    assert result["status"] == "truncated" and result["memory"]["refused_ops"] == 3
    assert not (tmp_path / "stolen.txt").exists()
    op = read_jsonl(tmp_path / "episode" / "steps.jsonl")[0]["memory_ops"][0]
    assert not op["ok"] and "MemoryAccessError" in op["error"]


def test_nethack_no_progress_rule_truncates_the_episode(tmp_path: Path, instant_model: ScriptedModelServer) -> None:
    class Waits(Scaffold):
        def step(self, step: Step) -> str:
            return "inventory" if step.index % 2 == 0 else "esc"  # game time stands still

    result = run_episode(_spec(tmp_path, env="nethack", task="NetHackChallenge-v0", steps=400), Waits, _router(instant_model))
    assert result["status"] == "truncated" and result["steps"] == 75  # NetHack's no-progress rule, as BALROG counts it


def test_resolve_action_is_exact_after_trimming_and_case() -> None:
    actions = ("Move West", "Do")
    assert resolve_action(" move west\n", actions) == "Move West"
    assert resolve_action("Move West please", actions) is None
    assert resolve_action(None, actions) is None


def test_model_time_does_not_count_against_the_step_timeout(tmp_path: Path, instant_model: ScriptedModelServer) -> None:
    instant_model.latency_s = 0.8  # each call is slower than the scaffold's whole budget
    result = run_episode(_spec(tmp_path, steps=2, step_timeout_s=0.5), NoteTaker, _router(instant_model))
    assert result["status"] == "truncated" and result["steps"] == 2
    assert result["time_s"]["model"] >= 1.6


def test_except_exception_cannot_swallow_the_step_timeout(tmp_path: Path, instant_model: ScriptedModelServer) -> None:
    class Catches(Scaffold):
        def step(self, step: Step) -> str:
            try:
                while True:
                    pass
            except Exception:
                return "east"

    result = run_episode(_spec(tmp_path, step_timeout_s=0.3), Catches, _router(instant_model))
    assert result["status"] == "errored" and result["error_kind"] == "scaffold" and "StepTimeout" in result["error"]
    assert result["steps"] == 1


def test_a_scaffold_that_swallows_every_timeout_still_times_out(tmp_path: Path, instant_model: ScriptedModelServer) -> None:
    class Swallows(Scaffold):
        def step(self, step: Step) -> str:
            swallowed = 0
            while swallowed < 2:  # the timeout is raised again every second
                try:
                    while True:
                        pass
                except BaseException:
                    swallowed += 1
            return "east"

    result = run_episode(_spec(tmp_path, step_timeout_s=0.3), Swallows, _router(instant_model))
    assert result["status"] == "errored" and "caught the timeout" in result["error"]


def test_a_timeout_never_leaves_memory_and_its_records_out_of_step(tmp_path: Path, instant_model: ScriptedModelServer) -> None:
    class Writer(Scaffold):
        def step(self, step: Step) -> str:
            for number in range(10**9):  # writes until the timer fires, most likely inside an op
                self.memory.write(f"f{number % 7}.md", f"entry {number}\n" * 20)
                self.memory.append("log.md", f"{number}\n")
            return "east"

    for attempt in range(5):  # each timer lands somewhere else; unshielded, most attempts tear
        result = run_episode(_spec(tmp_path / str(attempt), step_timeout_s=0.2), Writer, _router(instant_model))
        assert result["status"] == "errored" and "StepTimeout" in result["error"]
        steps = read_steps(tmp_path / str(attempt) / "episode")
        rebuilt = final_memory(s.memory_ops for s in steps)
        folder = tmp_path / str(attempt) / "episode" / "memory"
        on_disk = {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*") if p.is_file()}
        assert len(steps[0].memory_ops) > 10 and on_disk == rebuilt


def test_a_refused_request_ends_the_episode_scored_even_if_the_scaffold_catches_it(tmp_path: Path, instant_model: ScriptedModelServer) -> None:
    class Catches(Scaffold):
        def step(self, step: Step) -> str:
            if step.index == 2:
                instant_model.failures = [400]
                try:
                    self.chat([{"role": "user", "content": "too long"}])
                except Exception:
                    pass
            return "east"

    result = run_episode(_spec(tmp_path), Catches, _router(instant_model))
    assert result["status"] == "errored" and result["error_kind"] == "request" and "HTTP 400" in result["error"]
    assert result["steps"] == 3 and is_scored(EpisodeRecord.model_validate(result))
    assert read_jsonl(tmp_path / "episode" / "steps.jsonl")[2]["llm_calls"][0]["error_kind"] == "request"


@pytest.mark.slow
def test_an_over_long_prompt_to_the_embedded_model_is_scored_at_the_progression_reached(tmp_path: Path, embedded_model_url: str) -> None:
    class Rambles(Scaffold):
        def step(self, step: Step) -> str:
            if step.index == 3:
                self.chat([{"role": "user", "content": "remember this: " + "word " * 6000}], routine="log")
            return "east"

    result = run_episode(_spec(tmp_path), Rambles, ModelRouter(ChatClient(embedded_model_url, max_retries=0)))
    assert result["error_kind"] == "request" and "context length" in result["error"] and is_scored(EpisodeRecord.model_validate(result))
    assert result["steps"] == 4


def test_a_game_that_fails_mid_step_leaves_records_that_still_verify(tmp_path: Path, instant_model: ScriptedModelServer,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The failing step's calls and memory writes happened: they are recorded (step unplayed),
    so episode.json, steps.jsonl and the memory folder agree and `harness verify` passes them."""
    import harness.agent.prepare as prepare_module
    from harness.envs import make_env
    from harness.report.verify_episode import check_episode
    from harness.runs.read import read_episode
    from harness.runs.records import EnvPlanRecord

    class Breaks:
        def __init__(self, env: str, task: str, text: Any = None) -> None:
            self.game = make_env(env, task, *([text] if text else []))
            self.spec, self.steps = self.game.spec, 0

        def reset(self, seed: int) -> Any:
            return self.game.reset(seed)

        def step(self, action: str) -> Any:
            self.steps += 1
            if self.steps == 3:
                raise ConnectionError("the env server went away")
            return self.game.step(action)

        def close(self) -> None:
            self.game.close()

    monkeypatch.setattr(prepare_module, "make_env", Breaks)
    result = run_episode(_spec(tmp_path, steps=5), NoteTaker, _router(instant_model))
    assert result["status"] == "errored" and result["error_kind"] == "env" and "went away" in result["error"]
    folder = tmp_path / "episode"
    steps = read_steps(folder)
    assert [s.action is None for s in steps] == [False, False, True] and steps[2].memory_ops and steps[2].llm_calls
    assert result["tokens"]["prompt"] == sum(c.prompt_tokens for s in steps for c in s.llm_calls)
    plan = EnvPlanRecord(tasks=["MazeWalk-9x9"], seeds=[0], max_steps=5)
    problems, replayed = check_episode(folder, read_episode(folder), steps, plan)
    assert problems == [] and replayed == 2
