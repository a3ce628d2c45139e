"""`harness verify` catches every edit of a stored run and names it: the stored run of the seed
agent (the embedded model, tool calls in JSON mode), copied and edited one way at a time, as a
forger would (the numbers that follow from an edit recomputed where that is easy)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.report.verify import verify_run
from harness.runs.layout import read_json

STORED_RUN = Path("leaderboards/runs/smoke-automem-seed")
EPISODE = Path("episodes/crafter/crafter/0")


def _steps(root: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (root / EPISODE / "steps.jsonl").read_text().splitlines()]


def _write_steps(root: Path, steps: list[dict[str, Any]]) -> None:
    (root / EPISODE / "steps.jsonl").write_text("".join(json.dumps(step) + "\n" for step in steps))


def _edit_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = read_json(path)
    change(data)
    path.write_text(json.dumps(data, indent=2))


def _first(steps: list[dict[str, Any]], routine: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first step with a successful call of `routine`, and that call."""
    return next((step, call) for step in steps for call in step["llm_calls"] if call["routine"] == routine and not call.get("error"))


def act_answer_changed_action_kept(root: Path) -> None:
    steps = _steps(root)
    _, call = _first(steps, "act")
    call["output"] = "Sleep" if call["output"] != "Sleep" else "Noop"
    _write_steps(root, steps)


def action_swapped(root: Path) -> None:
    steps = _steps(root)
    other = "Noop" if steps[0]["action"] != "Noop" else "Move West"
    steps[0]["action"] = steps[0]["raw_action"] = other
    _write_steps(root, steps)


def op_text_and_memory_file(root: Path) -> None:
    steps = _steps(root)
    step, op = next((s, o) for s in steps for o in s["memory_ops"] if o["ok"] and o["op"] in ("append", "create", "write"))
    memory = root / EPISODE / "memory" / op["path"]
    memory.write_text(memory.read_text().replace(op["text"], op["text"].upper()))
    op["text"] = op["text"].upper()
    _write_steps(root, steps)


def op_text_unlike_its_tool_call(root: Path) -> None:
    steps = _steps(root)
    step, op = next((s, o) for s in steps for o in s["memory_ops"] if o["ok"] and o.get("tool_call_id") and o.get("text"))
    op["text"] = op["text"].upper()
    memory = root / EPISODE / "memory" / op["path"]
    memory.write_text(memory.read_text().replace(op["text"].lower(), op["text"]))
    _write_steps(root, steps)


def run_json(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    return lambda root: _edit_json(root / "run.json", change)


def every_call_model(root: Path) -> None:
    for folder in (root / "episodes").glob("*/*/*"):
        lines = [json.loads(line) for line in (folder / "steps.jsonl").read_text().splitlines()]
        for step in lines:
            for call in step["llm_calls"]:
                call["model"] = "gpt-4o"
        (folder / "steps.jsonl").write_text("".join(json.dumps(step) + "\n" for step in lines))


def valid_flag_with_counts(root: Path) -> None:
    steps = _steps(root)
    steps[0]["valid"] = not steps[0]["valid"]
    _write_steps(root, steps)
    delta = -1 if steps[0]["valid"] else 1

    def count(episode: dict[str, Any]) -> None:
        episode["invalid_actions"] += delta
    _edit_json(root / EPISODE / "episode.json", count)

    def rate(results: dict[str, Any]) -> None:
        block = results["envs"]["crafter"]
        block["invalid_action_rate"] = read_json(root / EPISODE / "episode.json")["invalid_actions"] / block["steps"]
    _edit_json(root / "results.json", rate)


def prompt_tokens_everywhere(root: Path) -> None:
    """One call's prompt tokens, and every total that sums them, edited alike."""
    steps = _steps(root)
    steps[0]["llm_calls"][0]["prompt_tokens"] += 100
    _write_steps(root, steps)
    _edit_json(root / EPISODE / "episode.json", lambda episode: episode["tokens"].update(prompt=episode["tokens"]["prompt"] + 100))
    _edit_json(root / "results.json", lambda results: results["envs"]["crafter"].update(
        tokens_prompt=results["envs"]["crafter"]["tokens_prompt"] + 100))


def results_extra_key(root: Path) -> None:
    _edit_json(root / "results.json", lambda results: results["overall"].update({"rank": 1}))


def job_files_deleted(root: Path) -> None:
    (root / EPISODE / "worker.log").unlink()
    (root / EPISODE / "job.json").unlink()


EDITS: dict[str, tuple[Callable[[Path], None], str]] = {
    "the ACT answer changed, the action kept": (act_answer_changed_action_kept, "re-executed"),
    "an action swapped for another": (action_swapped, "the game received"),
    "a memory op's text edited with the memory file": (op_text_and_memory_file, "re-executed"),
    "an op's text unlike its tool call's arguments": (op_text_unlike_its_tool_call, "asked for"),
    "run.json model name": (run_json(lambda r: r["model"].update(name="gpt-4o")), "run.json says the model is 'gpt-4o'"),
    "run.json endpoint": (run_json(lambda r: r["model"].update(endpoint="https://api.openai.com/v1")), "model.endpoint"),
    "run.json adapter": (run_json(lambda r: r["model"].update(adapter="adapter-0123456789ab")), "adapter"),
    "run.json adapter hash": (run_json(lambda r: r["model"].update(adapter_hash="sha256:" + "0" * 64)), "adapter"),
    "run.json runtime": (run_json(lambda r: r.update(runtime="docker")), "runtime"),
    "run.json submission hash": (run_json(lambda r: r["submission"].update(hash="sha256:" + "1" * 64)),
                                 "cannot re-execute the submission"),
    "every call's model": (every_call_model, "answered by 'gpt-4o'"),
    "a step's valid flag, the counts recomputed": (valid_flag_with_counts, "valid is"),
    "prompt token counts edited consistently": (prompt_tokens_everywhere, "prompt tokens; its prompt has"),
    "an extra key in results.json": (results_extra_key, "overall.rank is not a key"),
    "worker.log and job.json deleted": (job_files_deleted, "is missing"),
    "run.json sampling_used claims BALROG's sampling": (
        run_json(lambda r: r.update(sampling_used={"max_tokens": [8192], "temperature": [1.0]})), "sampling_used is"),
    "run.json answer rule": (run_json(lambda r: r["submission"].update(answers="exact")), "read answers by the rule"),
}


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the stored run, verified as it is (the edits below start from a verified run)."""
    copy = tmp_path_factory.mktemp("stored") / "run"
    shutil.copytree(STORED_RUN, copy)
    report = verify_run(copy)
    assert report.verified and report.reexecuted, report.mismatches
    return copy


@pytest.mark.parametrize("edit", list(EDITS))
def test_each_edit_of_a_stored_run_is_caught_and_named(edit: str, stored: Path, tmp_path: Path) -> None:
    change, named = EDITS[edit]
    copy = tmp_path / "run"
    shutil.copytree(stored, copy)
    change(copy)
    report = verify_run(copy)
    assert not report.verified
    problems = [f"{m.episode}: {m.problem}" for m in report.mismatches]
    assert any(named in problem for problem in problems), problems


def test_what_verify_cannot_rederive_is_listed_as_claimed(stored: Path) -> None:
    claimed = read_json(stored / "verification.json")["claimed"]
    assert any("token" in item for item in claimed) and any("latenc" in item for item in claimed)
