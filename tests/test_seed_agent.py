"""The AUTOMEM seed agent (submissions/automem-seed, issue 11 part 4): the model chooses its
memory operations as tool calls, on a tool-calling server (native) and on a llama.cpp-style
server (schema-constrained JSON), with the same scaffold code."""

import json
from pathlib import Path
from typing import Any

import pytest

from harness.memory.tools import tool_definitions
from harness.models.scripted import ScriptedModelServer
from harness.models.tool_json import answer_schema
from harness.runs.read import call_input, read_run
from harness.tracks.eval import EvalOptions, run_eval

from conftest import episode_requests

SEED = "submissions/automem-seed"


def _routine(request: dict[str, Any]) -> str:
    asked = [m for m in request["messages"] if m["role"] == "user"][-1]["content"]
    return asked.split(":", 1)[0].lower()


def _native(request: dict[str, Any]) -> Any:
    """A tool-calling server: LOG appends twice (one more than the seed carries out), RECALL
    searches, ACT answers the first action."""
    if request.get("max_tokens") == 1:
        return "ok"
    routine = _routine(request)
    if routine == "log":
        calls = [{"id": f"log-{i}", "type": "function",
                  "function": {"name": "append", "arguments": json.dumps({"path": "notes.md", "text": f"note {i}\n"})}}
                 for i in range(2)]  # fmt: skip
        return {"content": None, "tool_calls": calls}
    if routine == "recall":
        return {"content": None, "tool_calls": [{"id": "recall-0", "type": "function",
                                                 "function": {"name": "search", "arguments": '{"pattern": "note"}'}}]}  # fmt: skip
    return request["structured_outputs"]["choice"][0]


def _json(request: dict[str, Any]) -> Any:
    """A llama.cpp-style server: tools come as a system message, answers as JSON text."""
    if request.get("max_tokens") == 1:
        return "ok"
    routine = _routine(request)
    if routine == "log":
        return json.dumps({"tool_calls": [{"name": "create", "arguments": {"path": "map.md", "text": "a tree\n"}}]})
    if routine == "recall":
        return json.dumps({"tool_calls": [{"name": "read", "arguments": {"path": "map.md"}}]})
    return "Noop"


def _play(tmp_path: Path, server: ScriptedModelServer) -> tuple[Any, list[dict[str, Any]]]:
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: tiny\nenvs:\n  crafter: {seeds: [0], max_steps: 2}\n")
    run, results = run_eval(EvalOptions(submission=SEED, suite=str(suite), model=server.url,
                                        runs_dir=str(tmp_path / "runs"), run_id="seed", show_progress=False))  # fmt: skip
    assert results.complete
    return run, episode_requests(server)


def _assert_append_only(requests: list[dict[str, Any]]) -> None:
    """Each step's three requests extend one conversation: a server's prefix cache serves it."""
    for step in range(0, len(requests), 3):
        log, recall, act = (r["messages"] for r in requests[step : step + 3])
        assert recall[: len(log)] == log and act[: len(recall)] == recall


def test_the_seed_agent_makes_the_models_tool_calls_on_a_tool_calling_server(tmp_path: Path) -> None:
    with ScriptedModelServer(_native, owned_by="vllm") as server:
        run, requests = _play(tmp_path, server)
    stored = read_run(run.root)
    episode = stored.episodes()[0]
    steps, messages = stored.steps(episode), stored.messages(episode)
    assert [call.routine for call in steps[0].llm_calls] == ["log", "recall", "act"]
    assert all(r["tools"] for r in requests)  # one tool list in every call: the prompt's start stays put
    act = requests[2]
    assert act["tool_choice"] == "none" and act["structured_outputs"]["choice"][0] == "Noop"
    assert requests[0]["parallel_tool_calls"] is False
    _assert_append_only(requests)
    # the model's calls made the ops (one per routine: the second append is refused by the seed)
    ops = [op for op in steps[0].memory_ops if op.tool_call_id]
    assert [(op.op, op.tool_call_id, op.call) for op in ops] == [("append", "log-0", 0), ("search", "recall-0", 1)]
    assert "not done" in call_input(steps[0].llm_calls[1], messages)[-2]["content"]  # log-1's answer
    assert (run.episode_dir("crafter", "crafter", 0) / "memory" / "notes.md").read_text() == "note 0\nnote 0\n"
    assert episode.memory.ops_by_routine == {"scaffold": {"list": 2}, "log": {"append": 2}, "recall": {"search": 2}}


def test_the_seed_agent_speaks_json_to_a_server_without_tool_calling(tmp_path: Path) -> None:
    with ScriptedModelServer(_json, owned_by="llamacpp") as server:
        run, requests = _play(tmp_path, server)
    log, recall, act = requests[:3]
    tools_message = log["messages"][0]
    assert tools_message["role"] == "system" and "- create(path, text)" in tools_message["content"]
    assert recall["messages"][0] == act["messages"][0] == tools_message
    _assert_append_only(requests)
    schema = log["response_format"]["schema"]["properties"]["tool_calls"]
    assert schema["maxItems"] == 1  # parallel_tool_calls=False
    assert "response_format" not in act and "grammar" in act  # tool_choice="none": a text answer among the actions
    assert not any(key in r for r in requests for key in ("tools", "tool_choice", "parallel_tool_calls"))
    stored = read_run(run.root)
    steps = stored.steps(stored.episodes()[0])
    first = [(op.op, op.path, op.ok, op.call) for op in steps[0].memory_ops if op.tool_call_id]
    assert first == [("create", "map.md", True, 0), ("read", "map.md", True, 1)]
    second = [(op.op, op.ok) for op in steps[1].memory_ops if op.tool_call_id]
    assert second == [("create", False), ("read", True)]  # the model's mistake, answered as a tool error


def test_tool_choice_and_parallel_tool_calls_shape_the_answer_schema() -> None:
    tools = tool_definitions(("append", "search"), max_text_chars=40)
    assert tools[0]["function"]["parameters"]["properties"]["text"]["maxLength"] == 40
    auto = answer_schema(tools)["properties"]["tool_calls"]
    assert auto["maxItems"] > 1 and "minItems" not in auto
    assert answer_schema(tools, "required", False)["properties"]["tool_calls"] | {} == {**auto, "maxItems": 1, "minItems": 1}
    named = answer_schema(tools, {"type": "function", "function": {"name": "search"}})["properties"]["tool_calls"]
    assert [item["properties"]["name"]["const"] for item in named["items"]["anyOf"]] == ["search"]
    assert named["minItems"] == 1
    with pytest.raises(ValueError, match="'read'"):
        answer_schema(tools, {"type": "function", "function": {"name": "read"}})
    assert answer_schema(tools)["required"] == ["tool_calls"]  # an answer may end after its calls


def test_choices_with_tools_need_tool_choice_none(tmp_path: Path) -> None:
    from harness.models.client import ChatClient

    with ScriptedModelServer(lambda request: "Noop", owned_by="vllm") as server:
        client = ChatClient(server.url)
        tools = tool_definitions(("read",))
        with pytest.raises(ValueError, match="tool_choice='none'"):
            client.chat([{"role": "user", "content": "hi"}], choices=["Noop"], tools=tools)
        assert client.chat([{"role": "user", "content": "hi"}], choices=["Noop"], tools=tools, tool_choice="none").text == "Noop"
