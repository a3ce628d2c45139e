"""Tool calls through the harness (issue 11 part 1): a scaffold offers tools, gets the
model's tool calls back, and every request and answer is recorded verbatim."""

import json
from pathlib import Path
from typing import Any

from harness.models.scripted import ScriptedModelServer
from harness.runs.read import call_input, call_tools, read_run
from harness.tracks.eval import EvalOptions, run_eval

from conftest import episode_requests, write_submission

TOOLS = [{"type": "function", "function": {
    "name": "append", "description": "Append text to a memory file.",
    "parameters": {"type": "object", "properties": {"path": {"type": "string"}, "text": {"type": "string"}},
                   "required": ["path", "text"]}}}]  # fmt: skip

NOTE_TAKER = f"""
import json
from harness.agent import Scaffold, Step

TOOLS = {TOOLS!r}

class Agent(Scaffold):
    def step(self, step: Step) -> str:
        conversation = [{{"role": "user", "content": step.observation}}]
        reply = self.chat(conversation, routine="log", tools=TOOLS, max_tokens=64)
        conversation.append({{"role": "assistant", "content": reply or None, "tool_calls": reply.tool_calls}})
        for call in reply.tool_calls:
            arguments = json.loads(call["function"]["arguments"])
            self.memory.append(arguments["path"], arguments["text"])
            conversation.append({{"role": "tool", "tool_call_id": call["id"], "content": "ok"}})
        return self.chat(conversation, routine="act", choices=list(step.actions))
"""


def _respond(request: dict[str, Any]) -> Any:
    if request.get("max_tokens") == 1:
        return "ok"  # the preflight request
    if request.get("tools"):
        step = sum(1 for m in request["messages"] if m["role"] == "user")
        arguments = json.dumps({"path": "notes.md", "text": f"seen {step}\n"})
        return {"content": None, "tool_calls": [{"id": "call_1", "type": "function",
                                                 "function": {"name": "append", "arguments": arguments}}]}  # fmt: skip
    return (request.get("structured_outputs") or {}).get("choice", ["Noop"])[0]


def test_tool_calls_reach_the_scaffold_and_are_recorded_verbatim(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: tiny\nenvs:\n  crafter: {seeds: [0], max_steps: 2}\n")
    submission = write_submission(tmp_path / "sub", NOTE_TAKER)
    with ScriptedModelServer(_respond, owned_by="vllm", model_name="served-model") as server:
        run, results = run_eval(EvalOptions(submission=str(submission), suite=str(suite), model=server.url,
                                            runs_dir=str(tmp_path / "runs"), run_id="tools", show_progress=False))  # fmt: skip
        sent = episode_requests(server)
    assert results.complete
    stored = read_run(run.root)
    episode = stored.episodes()[0]
    steps, messages = stored.steps(episode), stored.messages(episode)
    calls = [call for step in steps for call in step.llm_calls]
    assert [call.routine for call in calls] == ["log", "act", "log", "act"]
    log_call, act_call = calls[0], calls[1]
    assert log_call.tool_calls == [{"id": "call_1", "type": "function",
                                    "function": {"name": "append", "arguments": '{"path": "notes.md", "text": "seen 1\\n"}'}}]  # fmt: skip
    assert log_call.finish_reason == "tool_calls" and act_call.finish_reason == "stop"
    assert log_call.tool_mode == "native" and act_call.tool_mode is None  # a vLLM-style server calls tools itself
    assert call_tools(log_call, messages) == TOOLS and call_tools(act_call, messages) is None
    assert log_call.sampling == {"max_tokens": 64, "temperature": 0.0} and log_call.model == "served-model"
    # The recorded input of every call is exactly what the server received.
    for call, request in zip(calls, sent):
        assert call_input(call, messages) == request["messages"]
    assert call_input(act_call, messages)[-1] == {"role": "tool", "tool_call_id": "call_1", "content": "ok"}
    assert (run.episode_dir("crafter", "crafter", 0) / "memory" / "notes.md").read_text() == "seen 1\nseen 1\n"
    # tool lists are stored once, like messages
    assert sum(1 for line in (run.episode_dir("crafter", "crafter", 0) / "messages.jsonl").read_text().splitlines()
               if '"tools"' in line) == 1  # fmt: skip


def test_json_tool_mode_parses_whole_and_cut_off_answers() -> None:
    from harness.models.tool_json import answer_schema, parse_answer, request_messages

    whole = '{"tool_calls": [{"name": "read", "arguments": {"path": "a.md"}}], "content": "reading"}'
    content, calls = parse_answer(whole, "c")
    assert content == "reading" and calls == [{"id": "c-0", "type": "function",
                                               "function": {"name": "read", "arguments": '{"path": "a.md"}'}}]  # fmt: skip
    cut = '{"tool_calls": [{"name": "read", "arguments": {"path": "a.md"}}, {"name": "append", "arguments": {"pa'
    assert parse_answer(cut, "c") == ("", calls)
    assert parse_answer("plain words", "c") == ("plain words", None)
    assert parse_answer('{"tool_calls": [], "content": "no tools"}', "c") == ("no tools", None)
    schema = answer_schema(TOOLS)
    assert schema["properties"]["tool_calls"]["items"]["anyOf"][0]["properties"]["name"] == {"const": "append"}
    sent = request_messages([{"role": "user", "content": "hi"},
                             {"role": "assistant", "content": None, "tool_calls": calls},
                             {"role": "tool", "tool_call_id": "c-0", "content": "text of a.md"}], TOOLS)  # fmt: skip
    assert sent[0]["role"] == "system" and "- append(path, text)" in sent[0]["content"]
    assert json.loads(sent[2]["content"]) == {"tool_calls": [{"name": "read", "arguments": {"path": "a.md"}}], "content": ""}
    assert sent[3] == {"role": "user", "content": "Tool result (c-0):\ntext of a.md"}


MEMORY_TOOL_PLAYER = """
from harness.agent import Scaffold, Step

class Agent(Scaffold):
    def step(self, step: Step) -> str:
        conversation = [{"role": "user", "content": step.observation + "\\nSave what matters in your memory."}]
        reply = self.chat(conversation, routine="log", tools=self.memory.tools("append", "search"), max_tokens=96)
        conversation.append({"role": "assistant", "content": reply or None, "tool_calls": reply.tool_calls})
        conversation.extend(self.memory.call_tool(call) for call in reply.tool_calls)
        return self.chat(conversation, routine="act", choices=list(step.actions))
"""


def test_the_embedded_model_calls_memory_tools_through_a_json_schema(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: tiny\nenvs:\n  crafter: {seeds: [0], max_steps: 2}\n")
    submission = write_submission(tmp_path / "sub", MEMORY_TOOL_PLAYER)
    run, results = run_eval(EvalOptions(submission=str(submission), suite=str(suite), runs_dir=str(tmp_path / "runs"),
                                        run_id="embedded-tools", show_progress=False))  # fmt: skip
    assert results.complete
    stored = read_run(run.root)
    episode = stored.episodes()[0]
    steps, messages = stored.steps(episode), stored.messages(episode)
    logs = [call for step in steps for call in step.llm_calls if call.routine == "log"]
    assert len(logs) == 2 and all(call.tool_mode == "json" for call in logs)
    for call in logs:
        sent = call_input(call, messages)
        assert sent[0]["role"] == "system" and "- append(path, text)" in sent[0]["content"]  # tools described
        assert call.output is not None and call.output.lstrip().startswith("{")  # the schema held the answer
    made = [c for call in logs for c in call.tool_calls or []]
    ops = [op for step in steps for op in step.memory_ops]
    assert made, "the model made no tool call"  # greedy on seed 0: it does
    assert [op.tool_call_id for op in ops] == [c["id"] for c in made]
