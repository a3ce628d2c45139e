"""The regression gate with teeth (issue 24 part 5): deterministic runs compared step by step,
the first difference of each episode named."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.report.exact import exact_differences
from harness.runs.read import read_run
from harness.tracks.eval import EvalOptions, run_eval

SUITE = "name: tiny\nenvs:\n  crafter: {tasks: [crafter], seeds: [0], max_steps: 12}\n  minihack: {tasks: [Corridor-R3], seeds: [0], max_steps: 12}\n"


@pytest.fixture(scope="module")
def floor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("regress")
    (base / "tiny.yaml").write_text(SUITE)
    run, _ = run_eval(EvalOptions(submission="submissions/random", suite=str(base / "tiny.yaml"),
                                  runs_dir=str(base / "runs"), run_id="baseline", show_progress=False))  # fmt: skip
    return run.root


def _edited(floor: Path, target: Path, file: str, line: int, edit: dict[str, object]) -> Path:
    shutil.copytree(floor, target)
    path = target / "episodes" / "crafter" / "crafter" / "0" / file
    lines = path.read_text().splitlines()
    lines[line] = json.dumps({**json.loads(lines[line]), **edit})
    path.write_text("\n".join(lines) + "\n")
    return target


def test_the_random_floor_plays_the_same_twice(floor: Path, tmp_path: Path) -> None:
    again, _ = run_eval(EvalOptions(submission="submissions/random", suite=str(floor.parents[1] / "tiny.yaml"),
                                    runs_dir=str(tmp_path), run_id="again", show_progress=False))  # fmt: skip
    assert exact_differences(read_run(floor), read_run(again.root)) == ([], 24)


def test_a_changed_observation_is_named_at_the_step_it_first_shows_in(floor: Path, tmp_path: Path) -> None:
    changed = _edited(floor, tmp_path / "text", "steps.jsonl", 5, {"observation": "You see a changed world."})
    found, _ = exact_differences(read_run(floor), read_run(changed))
    assert len(found) == 1 and found[0].startswith("crafter/crafter/0 step 5: observation differs at character 3: "
                                                   "baseline 'Your status")  # fmt: skip


def test_a_changed_action_and_score_are_named(floor: Path, tmp_path: Path) -> None:
    changed = _edited(floor, tmp_path / "act", "steps.jsonl", 3, {"action": "Sleep"})
    found, _ = exact_differences(read_run(floor), read_run(changed))
    assert len(found) == 1 and found[0].startswith("crafter/crafter/0 step 3: action differs at character ") \
        and found[0].endswith("candidate 'Sleep'")  # fmt: skip
    rescored = _edited(floor, tmp_path / "score", "steps.jsonl", 7, {"progression": 0.5})
    assert exact_differences(read_run(floor), read_run(rescored))[0] == [
        "crafter/crafter/0 step 7: progression: baseline 0.0, candidate 0.5"]
    cli = subprocess.run([sys.executable, "-m", "harness.cli", "compare", str(floor), str(changed), "--exact"],
                         capture_output=True, text=True)  # fmt: skip
    assert cli.returncode == 1 and "step 3: action" in cli.stdout


def test_a_one_line_prompt_change_is_named_at_its_first_call(tmp_path: Path) -> None:
    from harness.models.scripted import ScriptedModelServer, answer_by_content

    changed = tmp_path / "changed"
    shutil.copytree("submissions/automem-seed", changed)
    scaffold = changed / "scaffold.py"
    source = scaffold.read_text()
    assert "before deciding (search or read)" in source
    scaffold.write_text(source.replace("before deciding (search or read)", "before you decide (search or read)"))
    (tmp_path / "one.yaml").write_text("name: one\nenvs:\n  crafter: {tasks: [crafter], seeds: [0], max_steps: 3}\n")
    runs = []
    with ScriptedModelServer(answer_by_content, owned_by="vllm") as model:
        for name, submission in (("seed", "submissions/automem-seed"), ("changed", str(changed))):
            run, _ = run_eval(EvalOptions(submission=submission, suite=str(tmp_path / "one.yaml"), model=model.url,
                                          runs_dir=str(tmp_path / "runs"), run_id=name, show_progress=False))  # fmt: skip
            runs.append(read_run(run.root))
    found, _ = exact_differences(*runs)
    assert len(found) == 1 and found[0].startswith("crafter/crafter/0 step 0: llm_calls[1].input"), found
    assert "differs at character" in found[0]
    assert "before deciding" in found[0] and "before you decide" in found[0]
