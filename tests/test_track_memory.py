"""Track memory with a scripted meta-LLM: verbatim data, disjoint seeds, two-model evaluation."""

import json
from pathlib import Path
from typing import Any

import pytest

from harness.models.adapters import adapter_hash, served_adapter_name
from harness.models.scripted import ScriptedModelServer, requested_choices
from harness.runs.layout import RunDir, read_json, read_jsonl
from harness.runs.read import call_input, read_run
from harness.tracks.common import TrackError
from harness.tracks.eval import EvalOptions
from harness.tracks.memory import (
    MemoryTrackOptions,
    _write_best_submission,
    parse_decision,
    run_memory_track,
)
from harness.tracks.records import MemoryTrial

from conftest import write_submission

SUITE = "name: maze\nenvs:\n  minihack: {tasks: [MazeWalk-9x9], seeds: [0], max_steps: 4}\n"

LOGGER = """
from harness.agent import Scaffold, Step

class Agent(Scaffold):
    def step(self, step: Step) -> str:
        conversation = [{"role": "user", "content": step.observation}]
        note = self.chat(conversation + [{"role": "user", "content": "LOG?"}], routine="log")
        self.memory.search("wall")
        self.memory.append("log.md", note + "\\n")
        self.chat(conversation + [{"role": "user", "content": "RECALL?"}], routine="recall")
        return self.chat(conversation, routine="act", choices=list(step.actions))
"""

DECISION = {"rationale": "keep consulted notes",
            "selection": {"routines": ["log", "recall"], "require_consult_before_write": False},
            "composition": {"per_routine": {"log": 3, "recall": 2}},
            "lora": {"rank": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"], "epochs": 1, "learning_rate": 0.001}}  # fmt: skip


def agent_answer(request: dict[str, Any]) -> str:
    """The agent's model: a valid action for act calls; otherwise it names the model asked."""
    choices = requested_choices(request)
    return choices[0] if choices else f"note from {request['model']} at {len(request['messages'])}"


@pytest.fixture()
def options(tmp_path: Path) -> MemoryTrackOptions:
    (tmp_path / "maze.yaml").write_text(SUITE)
    submission = write_submission(tmp_path / "logger", LOGGER, name="logger")
    return MemoryTrackOptions(
        eval=EvalOptions(submission=str(submission), suite=str(tmp_path / "maze.yaml"), model="",
                         runs_dir=str(tmp_path / "runs"), show_progress=False),
        meta_model="", trials=2, leaderboards_dir=str(tmp_path / "leaderboards"),
    )  # fmt: skip


def test_memory_track_trains_on_verbatim_memory_calls_and_evaluates_two_models(options: MemoryTrackOptions) -> None:
    replies = iter([json.dumps(DECISION), "I think you should train harder."])
    with ScriptedModelServer(agent_answer, model_name="base", owned_by="vllm") as agent, \
         ScriptedModelServer(lambda request: next(replies), model_name="meta") as meta:  # fmt: skip
        options.eval.model, options.meta_model = agent.url, meta.url
        root = run_memory_track(options, run_id="memory")
        loaded = agent.loaded_adapters
    state = read_json(root / "track.json")
    assert state["seeds"] == {"selection": [500], "report": [0], "train": [1000]} and state["gate"] == "mean"
    pool = read_run(root / "pool")
    assert {e.seed for e in pool.episodes()} == {1000}
    # every example is a recorded log/recall call, input and output verbatim, from the pool only
    recorded = []
    for episode in pool.episodes():
        messages = pool.messages(episode)
        for step in pool.steps(episode):
            recorded += [(call.routine, call_input(call, messages), call.output) for call in step.llm_calls]
    examples = read_jsonl(root / "trials" / "1" / "data.jsonl")
    assert len(examples) == 5 and {e["routine"] for e in examples} == {"log", "recall"}
    for example in examples:
        assert (example["routine"], example["messages"], example["completion"]) in recorded
        assert example["seed"] == 1000
    # the trial's evaluation: log/recall went to the adapter, act to the base model
    trial_run = RunDir(root / "trials" / "1" / "run")  # on the selection seed
    step = read_jsonl(trial_run.episode_dir("minihack", "MazeWalk-9x9", 500) / "steps.jsonl")[0]
    routed = {call["routine"]: (call["model"], call["adapter"]) for call in step["llm_calls"]}
    served = served_adapter_name(root / "trials" / "1" / "adapter")
    assert served.startswith("adapter-") and routed["log"] == (served, served) and routed["recall"] == (served, served)
    assert routed["act"] == ("base", None)
    assert f"note from {served}" in (trial_run.episode_dir("minihack", "MazeWalk-9x9", 500) / "memory" / "log.md").read_text()
    # both trials' folders are called `adapter`: each was registered under its own content hash
    second = served_adapter_name(root / "trials" / "2" / "adapter")
    assert [a["lora_name"] for a in loaded] == [served, second] and second != served
    assert read_run(trial_run.root).record.model.adapter_hash == adapter_hash(root / "trials" / "1" / "adapter")
    step = read_jsonl(RunDir(root / "trials" / "2" / "run").episode_dir("minihack", "MazeWalk-9x9", 500) / "steps.jsonl")[0]
    assert {call["model"] for call in step["llm_calls"] if call["routine"] == "log"} == {second}
    # the unusable second reply became the default decision, recorded as a fallback
    trials = read_json(root / "trials.json")["trials"]
    assert trials[0]["decision"]["fallback"] is None and trials[1]["decision"]["fallback"]
    assert trials[0]["decision"]["lora"]["rank"] == 4
    table = (root / "trials.md").read_text()
    assert "none (base only)" in table and "fallback decision" in table
    # the act calls never see memory here, so no adapter beats the base on the selection seed: the
    # mean gate passes none, nothing is published as a gain and no best submission is written
    assert not trials[0]["passed_gate"] and "does not beat" in trials[0]["reason"]
    report = read_json(root / "track.json")["report"]
    assert report["best_round"] is None and report["comparison"] is None
    assert {e.seed for e in read_run(report["baseline"]["run"]).episodes()} == {0}  # the report seed, used only here
    assert not (root / "best").exists() and "no trial passed the gate" in table
    row = (Path(options.leaderboards_dir) / "tracks" / "memory-maze.md").read_text()
    assert "none passed" in row and "+0.0 (no adapter kept)" in row
    # a best submission names the base model its server really served
    _write_best_submission(root / "forced-best", Path(options.eval.submission), MemoryTrial.model_validate(trials[0]))
    best = (root / "forced-best" / "submission.yaml").read_text()
    assert "adapter: adapter/" in best and "base: base" in best  # the model really used, not "embedded"
    assert (root / "forced-best" / "adapter" / "adapter_config.json").is_file()


def test_training_on_evaluation_seeds_is_refused(options: MemoryTrackOptions) -> None:
    options.train_seeds = "0"
    options.eval.model = options.meta_model = "http://127.0.0.1:9"
    with pytest.raises(TrackError, match="report and training seeds share"):
        run_memory_track(options, run_id="leak")


def test_decision_parsing_accepts_fenced_json_and_refuses_unknown_rules() -> None:
    decision = parse_decision("Here:\n```json\n" + json.dumps(DECISION) + "\n```")
    assert decision.fallback is None and decision.composition.per_routine == {"log": 3, "recall": 2}
    bad = parse_decision(json.dumps({"selection": {"pick_the_best": True}}))
    assert bad.fallback and "unknown selection rules" in bad.fallback
