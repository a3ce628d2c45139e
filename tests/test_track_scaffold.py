"""Track scaffold with a scripted meta-LLM: the gate keeps the better candidate only."""

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.models import ModelUnavailableError
from harness.models.scripted import ScriptedModelServer
from harness.runs import read_run
from harness.runs.layout import read_json
from harness.tracks.common import TrackError
from harness.tracks.eval import EvalOptions
from harness.tracks.scaffold import ScaffoldTrackOptions, run_scaffold_track

from conftest import write_submission

SUITE = "name: wood\nenvs:\n  crafter: {tasks: [crafter], seeds: [0], max_steps: 30}\n"

IDLE = """
from harness.agent import Scaffold, Step

class Agent(Scaffold):
    def step(self, step: Step) -> str:
        return self.chat([{"role": "user", "content": step.observation}], routine="act", choices=list(step.actions))
"""

# Walks to the nearest tree the text describes and collects wood: a real gain on seed 0.
WOOD = '''
from harness.agent import Scaffold, Step

class Agent(Scaffold):
    def step(self, step: Step) -> str:
        if "You face tree at your front." in step.observation:
            return "Do"
        for line in step.observation.splitlines():
            if line.startswith("- tree "):  # "- tree 7 steps to your north-west"
                direction = line.rsplit(" ", 1)[-1]
                self.memory.append("trees.md", direction + "\\n")
                return "Move " + direction.split("-")[0].title()  # north/south first, then across
        return "Noop"
'''

WORSE = IDLE.replace('return self.chat([{"role": "user", "content": step.observation}], routine="act", choices=list(step.actions))', 'return "Move West"')
BROKEN = "from harness.agent import Scaffold\n\nclass Agent(Scaffold)\n    pass\n"


def reply(diagnosis: str, code: str) -> str:
    return f"DIAGNOSIS: {diagnosis}\nExplanation.\nFILE: scaffold.py\n```python\n{code.strip()}\n```\n"


class ScriptedMeta:
    """Iteration 1: a better scaffold; 2: a worse one; 3: a broken one (also when asked to repair)."""

    def __init__(self) -> None:
        self.prompts: list[list[dict[str, Any]]] = []

    def __call__(self, request: dict[str, Any]) -> str:
        self.prompts.append(request["messages"])
        iteration = sum(1 for p in self.prompts if len(p) == 2)  # repairs have longer conversations
        return {1: reply("idling never collects anything: walk to trees", WOOD),
                2: reply("walk west", WORSE)}.get(iteration, reply("broken", BROKEN))


@pytest.fixture()
def setup(tmp_path: Path, instant_model: ScriptedModelServer) -> tuple[ScaffoldTrackOptions, ScriptedMeta, ScriptedModelServer]:
    suite = tmp_path / "wood.yaml"
    suite.write_text(SUITE)
    submission = write_submission(tmp_path / "idle", IDLE, name="idle")
    script = ScriptedMeta()
    meta = ScriptedModelServer(script, model_name="meta")
    meta.start()
    options = ScaffoldTrackOptions(
        eval=EvalOptions(submission=str(submission), suite=str(suite), model=instant_model.url,
                         runs_dir=str(tmp_path / "runs"), show_progress=False),
        meta_model=meta.url, iterations=3, patience=5, repairs=1, smoke_steps=2,
        leaderboards_dir=str(tmp_path / "leaderboards"), selection_seeds="1",  # seed 1 has a tree in reach
        runtime="local", allow_unsandboxed=True,  # fast; tests/test_track_sandbox.py runs candidates in containers
    )  # fmt: skip
    yield options, script, meta
    meta.stop()


def test_gate_keeps_the_better_candidate_and_rejects_the_worse_and_the_broken(setup: Any, tmp_path: Path) -> None:
    options, script, _ = setup
    root = run_scaffold_track(options, run_id="track")
    lineage_json = read_json(root / "lineage.json")
    rounds = lineage_json["rounds"]
    assert lineage_json["seeds"] == {"selection": [1], "report": [0], "train": []}
    assert [r["iteration"] for r in rounds] == [0, 1, 2, 3]
    assert rounds[0]["selection"]["progression"] == 0.0
    assert rounds[1]["kept"] and rounds[1]["selection"]["progression"] > 0
    assert rounds[1]["comparison"]["delta_mean"] == pytest.approx(rounds[1]["selection"]["progression"])
    # every decision was taken on the selection seed; the published gain is measured on the report seed
    for r in rounds[:3]:
        assert {e.seed for e in read_run(r["selection"]["run"]).episodes()} == {1}
    report = lineage_json["report"]
    assert report["best_round"] == 1 and {e.seed for e in read_run(report["best"]["run"]).episodes()} == {0}
    assert report["comparison"]["delta_mean"] == pytest.approx(1 / 22) and report["baseline"]["progression"] == 0.0
    assert not rounds[2]["kept"] and "does not beat" in rounds[2]["reason"]
    assert not rounds[3]["kept"] and "rejected after 2 attempts" in rounds[3]["reason"] and "syntax error" in rounds[3]["reason"]
    assert "trees.md" in (root / "best" / "scaffold.py").read_text()
    best_config = (root / "best" / "submission.yaml").read_text()
    assert "name: idle-it1" in best_config and "parent: idle" in best_config
    assert "+                self.memory.append" in (root / "iterations" / "1" / "diff.patch").read_text()
    # iteration 2 was proposed from the kept candidate's code and run
    second_prompt = script.prompts[1][1]["content"]
    assert "trees.md" in second_prompt and "longest stall" in second_prompt and "KEPT" in second_prompt
    lineage = (root / "lineage.md").read_text()
    assert lineage.count("\n| ") == 1 + 4 and "walk to trees" in lineage  # header + 4 iterations
    assert "report seeds [0] were used for nothing else" in lineage and "+4.5 [+4.5, +4.5]" in lineage
    row = (tmp_path / "leaderboards" / "tracks" / "scaffold-wood.md").read_text()
    assert "idle" in row and "+4.5 [+4.5, +4.5]" in row and "local, unsandboxed (--allow-unsandboxed)" in row
    assert read_json(root / "track.json")["candidates"] == "local, unsandboxed (--allow-unsandboxed)"


def test_a_track_resumes_after_its_meta_model_dies(setup: Any) -> None:
    options, script, meta = setup
    meta.failures = [500] * 100  # the meta-LLM is down from the start of iteration 1
    with pytest.raises(ModelUnavailableError):
        run_scaffold_track(options, run_id="crash")
    state = read_json(Path(options.eval.runs_dir) / "crash" / "track.json")
    assert len(state["rounds"]) == 1  # iteration 0 finished and is kept on disk
    meta.failures = []
    with pytest.raises(TrackError, match="other settings"):  # a resume never mixes two set-ups
        run_scaffold_track(replace(options, gate="ci"), run_id="crash", resume=True)
    root = run_scaffold_track(options, run_id="crash", resume=True)
    rounds = read_json(root / "lineage.json")["rounds"]
    assert [r["iteration"] for r in rounds] == [0, 1, 2, 3] and rounds[1]["kept"]


def test_track_rows_of_a_text_variant_go_to_their_own_table() -> None:
    from harness.tracks.common import table_name

    assert table_name("scaffold", EvalOptions(submission="s", suite="smoke")) == "scaffold-smoke"
    assert table_name("memory", EvalOptions(submission="s", suite="suites/standard.yaml", observation="rich",
                                            instructions="tips")) == "memory-standard-observation-rich-instructions-tips"  # fmt: skip


def test_a_refused_meta_request_loses_one_candidate_not_the_track(setup: Any) -> None:
    options, script, meta = setup
    meta.failures = [400]  # e.g. a prompt over the meta server's context
    root = run_scaffold_track(replace(options, iterations=2), run_id="refused")
    rounds = read_json(root / "lineage.json")["rounds"]
    assert not rounds[1]["kept"] and "the meta-LLM server refused the request" in rounds[1]["reason"]
    assert rounds[2]["kept"]  # the next iteration asked again, and got the better scaffold


def test_a_repair_request_stays_within_the_first_prompts_budget() -> None:
    from harness.tracks.meta import CHARS_PER_TOKEN
    from harness.tracks.scaffold import repair_messages

    first = [{"role": "system", "content": "rules"}, {"role": "user", "content": "code and traces " * 2000}]
    asked = repair_messages(first, "a long reply " * 3000, "SyntaxError " * 1000, budget_tokens=3000)
    assert [m["role"] for m in asked] == ["system", "user", "assistant", "user"]
    assert sum(len(m["content"]) for m in asked[1:3]) <= 3000 * CHARS_PER_TOKEN
    assert len(asked[3]["content"]) < 1700 and asked[1]["content"].startswith("code and traces")
