"""The eval track end to end: run directory, results, resume, interruption, real model."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.models.scripted import ScriptedModelServer
from harness.runs import read_run
from harness.runs.layout import RunDir, read_json, read_jsonl
from harness.tracks.eval import EvalError, EvalOptions, run_eval

from conftest import episode_requests, write_submission

SUITE = """
name: tiny
description: a test suite
envs:
  crafter: {tasks: [crafter], seeds: [0], max_steps: 3}
  minihack: {tasks: [MazeWalk-9x9, Corridor-R3], seeds: [0, 1], max_steps: 3}
  nethack: {tasks: [NetHackChallenge-v0], seeds: [0], max_steps: 3}
"""

PLAYER = """
import time
from harness.agent import Scaffold, Step

class Agent(Scaffold):
    def reset(self, task):
        self.system = {"role": "system", "content": task.instructions}

    def step(self, step: Step) -> str:
        self.memory.search("door")
        self.memory.append("notes.md", "seen\\n")
        time.sleep(float(__import__("os").environ.get("TEST_STEP_SLEEP", "0")))
        return self.chat([self.system, {"role": "user", "content": step.observation}], routine="act",
                         choices=list(step.actions))
"""


@pytest.fixture()
def suite_file(tmp_path: Path) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(SUITE)
    return str(path)


def _options(tmp_path: Path, suite_file: str, server: ScriptedModelServer, **kw: object) -> EvalOptions:
    submission = write_submission(tmp_path / "sub", PLAYER)
    return EvalOptions(submission=str(submission), suite=suite_file, model=server.url,
                       runs_dir=str(tmp_path / "runs"), show_progress=False, **kw)  # type: ignore[arg-type]


def test_eval_writes_the_run_directory_of_the_design(tmp_path: Path, suite_file: str, instant_model: ScriptedModelServer) -> None:
    run, results = run_eval(_options(tmp_path, suite_file, instant_model, workers=2, run_id="r1"))
    info = read_run(run.root).record
    assert info.status == "complete" and info.episodes_planned == 6
    assert info.submission.hash.startswith("sha256:") and info.model.endpoint == instant_model.url
    for env, task, seed in [("crafter", "crafter", 0), ("minihack", "Corridor-R3", 1), ("nethack", "NetHackChallenge-v0", 0)]:
        folder = run.episode_dir(env, task, seed)
        episode = read_json(folder / "episode.json")
        assert set(episode) >= {"env", "task", "seed", "status", "error", "steps", "progression", "reward_total",
                                "invalid_actions", "memory", "tokens", "time_s"}
        assert set(episode["memory"]) >= {"chars_final", "files_final", "growth_chars_per_step", "writes", "searches",
                                          "reads", "write_to_search_ratio", "consult_before_write", "refused_ops"}
        assert len(read_jsonl(folder / "steps.jsonl")) == 3 and (folder / "memory" / "notes.md").exists()
    on_disk = read_json(run.results_file)
    assert set(on_disk) >= {"schema_version", "run_id", "submission", "model", "adapter", "suite", "envs", "overall"}
    assert results.envs["minihack"].episodes == 4
    for env, summary in results.envs.items():
        assert set(on_disk["envs"][env]) >= {"episodes", "progression_mean", "progression_ci95", "growth_chars_per_step",
                                             "write_to_search_ratio", "consult_before_write", "invalid_action_rate",
                                             "tokens_prompt", "tokens_completion"}
        assert summary.write_to_search_ratio == 1.0 and summary.consult_before_write == 1.0
    assert results.overall.progression_mean == 0.0
    assert "| minihack" in run.leaderboard_file.read_text()


def test_existing_run_is_not_overwritten_and_resume_skips_complete_episodes(tmp_path: Path, suite_file: str, instant_model: ScriptedModelServer) -> None:
    run, _ = run_eval(_options(tmp_path, suite_file, instant_model, run_id="r2"))
    with pytest.raises(EvalError, match="--resume"):
        run_eval(_options(tmp_path, suite_file, instant_model, run_id="r2"))
    stamp = (run.episode_dir("crafter", "crafter", 0) / "episode.json").stat().st_mtime_ns
    calls = len(episode_requests(instant_model))
    run_eval(_options(tmp_path, suite_file, instant_model, run_id="r2", resume=True))
    assert (run.episode_dir("crafter", "crafter", 0) / "episode.json").stat().st_mtime_ns == stamp
    assert len(episode_requests(instant_model)) == calls


def test_resume_retries_infrastructure_failures_only(tmp_path: Path, suite_file: str, instant_model: ScriptedModelServer) -> None:
    run, _ = run_eval(_options(tmp_path, suite_file, instant_model, run_id="r3"))
    broken = run.episode_dir("minihack", "MazeWalk-9x9", 1) / "episode.json"
    record = read_json(broken)
    broken.write_text(json.dumps({**record, "status": "errored", "error_kind": "model", "error": "server gone"}))
    scaffold_error = run.episode_dir("minihack", "MazeWalk-9x9", 0) / "episode.json"
    scaffold_error.write_text(json.dumps({**read_json(scaffold_error), "status": "errored", "error_kind": "scaffold"}))
    calls = len(episode_requests(instant_model))
    run_eval(_options(tmp_path, suite_file, instant_model, run_id="r3", resume=True))
    assert read_json(broken)["status"] == "truncated"
    assert read_json(scaffold_error)["status"] == "errored"
    assert len(episode_requests(instant_model)) == calls + 3


def test_resume_refuses_a_changed_submission(tmp_path: Path, suite_file: str, instant_model: ScriptedModelServer) -> None:
    options = _options(tmp_path, suite_file, instant_model, run_id="r4", env=("crafter",))
    run_eval(options)
    (Path(options.submission) / "scaffold.py").write_text(PLAYER + "\n# changed\n")
    options.resume = True
    with pytest.raises(EvalError, match="submission.hash: recorded"):
        run_eval(options)


def test_a_killed_run_resumes_to_completion(tmp_path: Path, suite_file: str, instant_model: ScriptedModelServer) -> None:
    submission = write_submission(tmp_path / "sub", PLAYER)
    command = [sys.executable, "-m", "harness.cli", "eval", str(submission), "--suite", suite_file,
               "--model", instant_model.url, "--runs-dir", str(tmp_path / "runs"), "--run-id", "killed",
               "--max-steps", "40", "--no-progress"]
    process = subprocess.Popen(command, env={**os.environ, "TEST_STEP_SLEEP": "0.05"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = RunDir(tmp_path / "runs" / "killed")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list((run.root / "episodes").glob("*/*/*/episode.json")):
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)  # stops like Ctrl-C (SIGINT may be ignored in background jobs)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0 and "resume" in stderr
    assert read_run(run.root).record.status == "interrupted"
    finished = list((run.root / "episodes").glob("*/*/*/episode.json"))
    assert 0 < len(finished) < 6
    completed = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert read_run(run.root).record.status == "complete"
    for folder in run.episode_dirs():
        assert len(read_jsonl(folder / "steps.jsonl")) == read_json(folder / "episode.json")["steps"]
    assert read_json(run.results_file)["complete"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["automem-seed", "context-baseline"])
def test_reference_submission_plays_all_three_games_on_the_embedded_model(tmp_path: Path, name: str) -> None:
    options = EvalOptions(submission=f"submissions/{name}", suite="smoke", max_steps=2,
                          runs_dir=str(tmp_path), show_progress=False)  # fmt: skip
    run, results = run_eval(options)
    assert set(results.envs) == {"crafter", "minihack", "nethack"}
    for summary in results.envs.values():
        assert summary.episodes == 1 and summary.steps == 2 and summary.invalid_action_rate == 0.0
        assert summary.tokens_prompt > 0
    if name == "automem-seed":  # the model chose its memory operations; the trace says which call made each
        stored = read_run(run.root)
        for episode in stored.episodes():
            steps = stored.steps(episode)
            made = {c["id"]: index for step in steps for index, call in enumerate(step.llm_calls)
                    for c in call.tool_calls or []}  # fmt: skip
            ops = [op for step in steps for op in step.memory_ops if op.tool_call_id]
            assert ops and all(made[op.tool_call_id] == op.call for op in ops), episode.env


@pytest.mark.parametrize("change", ["model", "step_timeout_s", "max_steps"])
def test_resume_refuses_another_set_up_and_names_the_difference(tmp_path: Path, suite_file: str, instant_model: ScriptedModelServer, change: str) -> None:
    options = _options(tmp_path, suite_file, instant_model, run_id="r5", env=("crafter",))
    run_eval(options)
    options.resume = True
    expected = {"model": "model.endpoint: recorded", "step_timeout_s": "options.step_timeout_s: recorded 600.0, now 5.0",
                "max_steps": "suite.name: recorded 'tiny[envs=crafter]', now 'tiny[envs=crafter;max_steps=2]'"}[change]  # fmt: skip
    with ScriptedModelServer(lambda request: "north", owned_by="vllm") as other:
        if change == "model":
            options.model = other.url
        elif change == "step_timeout_s":
            options.step_timeout_s = 5.0
        else:
            options.max_steps = 2
        with pytest.raises(EvalError, match=re.escape(expected)):
            run_eval(options)
