"""Memory operations as the model's tools (issue 11 parts 2 and 7): definitions, execution in
the sandbox, errors returned to the model and counted, and metrics that follow the model's
decisions rather than the scaffold's code."""

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.memory import Memory
from harness.memory.tools import PATH_PATTERN, TOOL_NAMES
from harness.models.scripted import ScriptedModelServer
from harness.report.verify import verify_run
from harness.runs.read import read_run
from harness.tracks.eval import EvalOptions, run_eval

from conftest import write_submission


def _call(name: str, call_id: str = "c1", **arguments: Any) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def test_the_tool_definitions_name_every_operation_and_subsets_work(tmp_path: Path) -> None:
    memory = Memory(tmp_path)
    assert [t["function"]["name"] for t in memory.tools()] == list(TOOL_NAMES)
    assert TOOL_NAMES == ("list", "read", "search", "append", "create", "rewrite", "delete")
    assert [t["function"]["name"] for t in memory.tools("read", "search")] == ["read", "search"]
    with pytest.raises(ValueError, match="no memory tool grep"):
        memory.tools("grep")


def test_tool_calls_run_in_the_sandbox_and_answer_as_tool_messages(tmp_path: Path) -> None:
    memory = Memory(tmp_path)
    assert memory.call_tool(_call("create", path="notes.md", text="stairs at 3,4\n")) == \
        {"role": "tool", "tool_call_id": "c1", "content": "ok: created notes.md"}  # fmt: skip
    memory.call_tool(_call("append", "c2", path="notes.md", text="newt west\n"))
    assert memory.call_tool(_call("search", "c3", pattern="STAIRS"))["content"] == "notes.md:1: stairs at 3,4"
    assert memory.call_tool(_call("read", "c4", path="notes.md"))["content"] == "stairs at 3,4\nnewt west\n"
    assert memory.call_tool(_call("list", "c5"))["content"] == "notes.md"
    memory.call_tool(_call("rewrite", "c6", path="notes.md", text="only this\n"))
    assert (tmp_path / "notes.md").read_text() == "only this\n"
    memory.call_tool(_call("delete", "c7", path="notes.md"))
    assert memory.call_tool(_call("list", "c8"))["content"] == "(no files)"
    ops = memory.take_ops()
    assert [op.tool_call_id for op in ops] == [f"c{i}" for i in range(1, 9)] and all(op.ok for op in ops)


@pytest.mark.parametrize("call, error", [
    (_call("read", path="../../etc/passwd"), "leaves the memory directory"),
    (_call("read", path="missing.md"), "no memory file 'missing.md'"),
    (_call("create", path="a.md", text="x"), None),
    (_call("grep", pattern="x"), "there is no memory tool 'grep'"),
    (_call("append", path="a.md"), "append needs text"),
    ({"id": "c1", "type": "function", "function": {"name": "read", "arguments": "{not json"}}, "error:"),
])  # fmt: skip
def test_a_bad_tool_call_is_answered_with_an_error_and_counted(tmp_path: Path, call: dict[str, Any], error: str | None) -> None:
    memory = Memory(tmp_path)
    answer = memory.call_tool(call)
    ops = memory.take_ops()
    if error is None:
        assert answer["content"].startswith("ok") and ops[0].ok
        return
    assert answer["content"].startswith("error:") and error in answer["content"]
    assert len(ops) == 1 and not ops[0].ok and ops[0].tool_call_id == "c1"
    assert memory.tool_call_id is None  # later operations of the scaffold's own code are not the model's


TOOL_SCAFFOLD = """
from harness.agent import Scaffold, Step

class Agent(Scaffold):
    def step(self, step: Step) -> str:
        conversation = [{"role": "user", "content": step.observation}]
        for _ in range(3):  # at most three rounds of memory operations
            reply = self.chat(conversation, routine="log", tools=self.memory.tools())
            if not reply.tool_calls:
                break
            conversation.append({"role": "assistant", "content": reply or None, "tool_calls": reply.tool_calls})
            conversation.extend(self.memory.call_tool(call) for call in reply.tool_calls)
        return self.chat(conversation, routine="act", choices=list(step.actions))
"""


def _model(order: list[str]) -> Any:
    """A tool-calling model that makes the memory operations in `order`, one per round."""
    def respond(request: dict[str, Any]) -> Any:
        if request.get("max_tokens") == 1:
            return "ok"
        if not request.get("tools"):
            return (request.get("structured_outputs") or {}).get("choice", ["Noop"])[0]
        done = sum(1 for m in request["messages"] if m["role"] == "tool")
        if done >= len(order):
            return "nothing more"
        arguments = {"path": "notes.md", "text": "a tree north\n"} if order[done] == "append" else {"pattern": "tree"}
        return {"content": None, "tool_calls": [_call(order[done], f"call_{done}", **arguments)]}
    return respond


def _play(tmp_path: Path, order: list[str]) -> Any:
    tmp_path.mkdir(parents=True, exist_ok=True)
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: tiny\nenvs:\n  crafter: {seeds: [0], max_steps: 3}\n")
    submission = write_submission(tmp_path / "sub", TOOL_SCAFFOLD)
    with ScriptedModelServer(_model(order), owned_by="vllm") as server:
        run, results = run_eval(EvalOptions(submission=str(submission), suite=str(suite), model=server.url,
                                            runs_dir=str(tmp_path / "runs"), run_id="-".join(order), show_progress=False))  # fmt: skip
    return run, results


def test_the_same_scaffold_code_scores_the_models_order_of_memory_decisions(tmp_path: Path) -> None:
    consult_first, results_a = _play(tmp_path / "a", ["search", "append"])
    write_first, results_b = _play(tmp_path / "b", ["append", "search"])
    assert results_a.envs["crafter"].consult_before_write == 1.0
    assert results_b.envs["crafter"].consult_before_write == 0.0
    for run in (consult_first, write_first):
        stored = read_run(run.root)
        steps = stored.steps(stored.episodes()[0])
        ops = steps[0].memory_ops
        assert [op.op for op in ops] in (["search", "append"], ["append", "search"])
        for op in ops:  # each operation names the chat call whose answer asked for it
            call = steps[0].llm_calls[op.call]
            assert op.tool_call_id in [c["id"] for c in call.tool_calls or []]
        assert verify_run(run).verified


def test_memory_by_routine_is_verified_and_older_episodes_without_it_still_verify(tmp_path: Path) -> None:
    run, _ = _play(tmp_path, ["search", "append"])
    episode_file = run.episode_dir("crafter", "crafter", 0) / "episode.json"
    episode = json.loads(episode_file.read_text())
    assert episode["memory"]["ops_by_routine"] == {"log": {"search": 3, "append": 3}} and episode["memory"]["model_errors"] == 0
    episode["memory"]["ops_by_routine"] = {"scaffold": {"search": 3, "append": 3}}  # claims the code chose them
    episode_file.write_text(json.dumps(episode))
    assert any("ops_by_routine" in m.problem for m in verify_run(run, write=False).mismatches)
    # an episode written with schema 1.1, before these numbers existed, is not asked for them
    episode["schema_version"] = "1.1"
    del episode["memory"]["ops_by_routine"], episode["memory"]["model_errors"]
    episode_file.write_text(json.dumps(episode))
    assert verify_run(run, write=False).verified


def test_sft_data_keeps_tool_call_answers_verbatim_and_any_routine_but_act(tmp_path: Path) -> None:
    from harness.runs.layout import RunDir
    from harness.train.data import Composition, SelectionRules, build_sft_data, candidates_from_runs

    run, _ = _play(tmp_path, ["search", "append"])
    pool = candidates_from_runs([RunDir(run.root)])
    assert {c.routine for c in pool} == {"log"}  # act calls are never candidates
    out = tmp_path / "data.jsonl"
    build_sft_data([RunDir(run.root)], SelectionRules(routines=["log"]), Composition(per_routine={"log": 100}), out)
    examples = [json.loads(line) for line in out.read_text().splitlines()]
    stored = read_run(run.root)
    recorded = [(call.output, call.tool_calls) for episode in stored.episodes() for step in stored.steps(episode)
                for call in step.llm_calls if call.routine == "log"]  # fmt: skip
    assert examples and all((e["completion"], e.get("tool_calls")) in recorded for e in examples)
    assert any(e.get("tool_calls") for e in examples) and all(e["tools"] for e in examples)
    with pytest.raises(ValueError, match="never trained"):
        SelectionRules.from_mapping({"routines": ["log", "act"]})
    assert SelectionRules.from_mapping({"routines": ["reflect"]}).routines == ["reflect"]


def test_routines_are_names_the_scaffold_chooses(tmp_path: Path) -> None:
    from harness.agent.submission import SubmissionError, read_submission
    from harness.models.router import check_routine

    assert check_routine("reflect") == "reflect" and check_routine("summarize-2") == "summarize-2"
    for bad in ("Reflect", "", "log!", "x" * 40, 3):
        with pytest.raises(ValueError):
            check_routine(bad)
    config = "name: x\ndescription: y\nauthors: [a]\nscaffold: scaffold.py:Agent\nmodel:\n  adapter_routines: [{}]\n"
    write_submission(tmp_path / "ok", TOOL_SCAFFOLD, config.format("log, reflect"))
    assert read_submission(tmp_path / "ok").model.adapter_routines == ("log", "reflect")
    write_submission(tmp_path / "act", TOOL_SCAFFOLD, config.format("log, act"))
    with pytest.raises(SubmissionError, match="lists act"):
        read_submission(tmp_path / "act")


@settings(max_examples=200, deadline=None)
@given(path=st.from_regex(PATH_PATTERN, fullmatch=True).filter(lambda p: len(p) <= 80))
def test_every_path_the_tool_schema_allows_is_one_the_sandbox_accepts(tmp_path_factory: pytest.TempPathFactory, path: str) -> None:
    """The schema keeps a constrained model inside the memory: what it may write, the sandbox takes."""
    memory = Memory(tmp_path_factory.mktemp("m"))
    reply = memory.call_tool({"id": "c", "function": {"name": "append", "arguments": json.dumps({"path": path, "text": "x"})}})
    assert not reply["content"].startswith("error"), (path, reply)
