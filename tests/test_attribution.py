"""Who a failure belongs to: a misconfigured or broken server is infrastructure, stopped before
the run or counted apart; the scaffold cannot pick its model; every call records its retries
and its own tool-call ids."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.agent.episode import run_episode
from harness.models.client import ChatClient, ModelUnavailableError
from harness.models.router import ModelRouter
from harness.models.scripted import ScriptedModelServer, first_choice_or
from harness.runs.jobs import EpisodeSpec
from harness.runs.read import read_steps

from conftest import write_submission

SUITE = "name: one\nenvs:\n  minihack: {tasks: [MazeWalk-9x9], seeds: [0], max_steps: 2}\n"

USES_TOOLS = """
from harness.agent import Scaffold, Step

class Agent(Scaffold):
    def step(self, step: Step) -> str:
        self.chat([{"role": "user", "content": step.observation}], routine="log", tools=self.memory.tools("append"))
        return step.actions[0]
"""

ASKS_FOR_A_MODEL = """
from harness.agent import Scaffold, Step

class Agent(Scaffold):
    def step(self, step: Step) -> str:
        return self.chat([{"role": "user", "content": "hi"}], routine="act", {where})
"""

TWO_TOOL_CALLS_A_STEP = """
from harness.agent import Scaffold, Step

class Agent(Scaffold):
    def step(self, step: Step) -> str:
        for routine in ("log", "recall"):
            reply = self.chat([{"role": "user", "content": step.observation}], routine=routine,
                              tools=self.memory.tools("append"))
            for call in reply.tool_calls:
                self.memory.call_tool(call)
        return step.actions[0]
"""


def _eval(tmp_path: Path, code: str, server: ScriptedModelServer, yaml_extra: str = "") -> subprocess.CompletedProcess[str]:
    (tmp_path / "one.yaml").write_text(SUITE)
    yaml_text = f"name: sub\ndescription: d\nauthors: [t]\nscaffold: scaffold.py:Agent\n{yaml_extra}"
    submission = write_submission(tmp_path / "sub", code, yaml_text)
    return subprocess.run([sys.executable, "-m", "harness.cli", "eval", str(submission), "--suite", str(tmp_path / "one.yaml"),
                           "--model", server.url, "--runs-dir", str(tmp_path / "runs"), "--no-progress"],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ))  # fmt: skip


def _spec(tmp_path: Path, steps: int = 2) -> EpisodeSpec:
    return EpisodeSpec(env="minihack", task="MazeWalk-9x9", seed=0, max_steps=steps, episode_dir=str(tmp_path / "episode"))


def test_a_server_that_refuses_tools_stops_the_run_before_its_first_episode_naming_the_fix(tmp_path: Path) -> None:
    with ScriptedModelServer(first_choice_or("noted"), owned_by="vllm") as server:
        server.refuse_tools = True
        completed = _eval(tmp_path, USES_TOOLS, server)
    assert completed.returncode == 1
    assert "refuses what the submission uses" in completed.stderr and "--enable-auto-tool-choice" in completed.stderr
    assert not list((tmp_path / "runs").glob("*/episodes/*/*/*/episode.json"))


def test_a_submission_that_declares_it_needs_no_tools_runs_there_and_a_tool_call_anyway_is_infrastructure(tmp_path: Path) -> None:
    with ScriptedModelServer(first_choice_or("noted"), owned_by="vllm") as server:
        server.refuse_tools = True
        completed = _eval(tmp_path, USES_TOOLS, server, "model: {uses: [choices]}\n")
    assert completed.returncode == 1 and "RUN NOT COMPLETE" in completed.stderr
    episode = json.loads(next((tmp_path / "runs").glob("*/episodes/*/*/*/episode.json")).read_text())
    assert episode["error_kind"] == "model" and "refused tools before the run started" in episode["error"]


def test_an_answer_without_choices_is_the_servers_failure_not_an_empty_answer(tmp_path: Path) -> None:
    with ScriptedModelServer(first_choice_or("noted"), owned_by="vllm") as server:
        server.empty_answers = True
        with pytest.raises(ModelUnavailableError, match="HTTP 200 with no choices"):
            ChatClient(server.url, max_retries=0).chat([{"role": "user", "content": "hi"}])
        code = USES_TOOLS.replace(', tools=self.memory.tools("append")', "")
        namespace: dict[str, object] = {}
        exec(compile(code, "scaffold.py", "exec"), namespace)  # a scaffold class without a submission folder
        result = run_episode(_spec(tmp_path), namespace["Agent"], ModelRouter(ChatClient(server.url, max_retries=0)))  # type: ignore[arg-type]
    assert result["status"] == "errored" and result["error_kind"] == "model" and "no choices" in result["error"]


@pytest.mark.parametrize("where", ['model="other-model"', 'extra_body={"model": "other-model"}'])
def test_a_scaffold_cannot_choose_its_model(tmp_path: Path, where: str) -> None:
    with ScriptedModelServer(first_choice_or("north"), owned_by="vllm") as server:
        completed = _eval(tmp_path, ASKS_FOR_A_MODEL.replace("{where}", where), server)
        asked = [r.get("model") for r in server.requests]
    assert "other-model" not in asked
    episode = json.loads(next((tmp_path / "runs").glob("*/episodes/*/*/*/episode.json")).read_text())
    assert episode["error_kind"] == "scaffold" and "the harness chooses the model by routine" in episode["error"]
    assert "EVERY EPISODE FAILED" in completed.stderr and completed.returncode == 1


def test_retries_are_recorded_with_each_call(tmp_path: Path) -> None:
    with ScriptedModelServer(first_choice_or("north"), owned_by="vllm") as server:
        server.failures = [503, 503]  # the first call's first two attempts
        code = USES_TOOLS.replace(', tools=self.memory.tools("append")', "")
        namespace: dict[str, object] = {}
        exec(compile(code, "scaffold.py", "exec"), namespace)
        run_episode(_spec(tmp_path), namespace["Agent"], ModelRouter(ChatClient(server.url, max_retries=4)))  # type: ignore[arg-type]
    calls = [call for step in read_steps(tmp_path / "episode") for call in step.llm_calls]
    assert [call.retries for call in calls] == [2, 0]


def test_tool_call_ids_are_unique_in_an_episode_and_the_same_in_every_run(tmp_path: Path) -> None:
    answer = json.dumps({"tool_calls": [{"name": "append", "arguments": {"path": "notes.md", "text": "x\n"}}]})
    namespace: dict[str, object] = {}
    exec(compile(TWO_TOOL_CALLS_A_STEP, "scaffold.py", "exec"), namespace)
    ids = []
    for attempt in ("a", "b"):
        with ScriptedModelServer(lambda request: answer, owned_by="llamacpp") as server:  # JSON tool mode
            run_episode(_spec(tmp_path / attempt, steps=3), namespace["Agent"], ModelRouter(ChatClient(server.url)))  # type: ignore[arg-type]
        ids.append([tool_call["id"] for step in read_steps(tmp_path / attempt / "episode")
                    for call in step.llm_calls for tool_call in call.tool_calls or ()])  # fmt: skip
    assert len(ids[0]) == 6 and len(set(ids[0])) == 6 and ids[0] == ids[1]
