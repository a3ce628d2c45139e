"""Failure rules of a run, with real processes: a failed run never looks like a result.

Servers that die or drop requests stop the run loudly and name themselves; a worker stuck
in C is ended from outside and the fault attributed; an incomplete run exits non-zero and
is refused by the leaderboard and by compare.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.models.scripted import ScriptedModelServer, first_choice_or
from harness.runs import read_run
from harness.runs.layout import RunDir, read_json, read_jsonl
from harness.runs.phase import Phase
from harness.runs.watchdog import WatchLimits, overdue
from harness.tracks.eval import EvalError, EvalOptions, run_eval

from conftest import write_submission

SUITE = """
name: six
description: six short MiniHack episodes
envs:
  minihack: {tasks: [MazeWalk-9x9, Corridor-R3], seeds: [0, 1, 2], max_steps: 4}
"""

ASKER = """
from harness.agent import Scaffold, Step

class Agent(Scaffold):
    def step(self, step: Step) -> str:
        self.memory.append("notes.md", "seen\\n")
        return self.chat([{"role": "user", "content": step.observation}], choices=list(step.actions))
"""


def _harness(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})  # fmt: skip


@pytest.fixture()
def suite_file(tmp_path: Path) -> str:
    (tmp_path / "six.yaml").write_text(SUITE)
    return str(tmp_path / "six.yaml")


def test_a_server_that_lists_its_model_but_drops_every_request_fails_the_run_and_is_named(tmp_path: Path, suite_file: str) -> None:
    submission = write_submission(tmp_path / "sub", ASKER)
    with ScriptedModelServer(first_choice_or("x")) as server:
        server.answer_chats = 0
        completed = _harness("eval", str(submission), "--suite", suite_file, "--model", server.url,
                             "--runs-dir", str(tmp_path / "runs"), "--no-progress")  # fmt: skip
    assert completed.returncode != 0
    assert server.url in completed.stderr and "failed a test request" in completed.stderr
    assert not list((tmp_path / "runs").glob("*/episodes/*/*/*/episode.json"))


def test_infrastructure_failures_in_a_row_stop_the_run_which_is_then_unpublishable(tmp_path: Path, suite_file: str) -> None:
    submission = write_submission(tmp_path / "sub", ASKER)
    runs = tmp_path / "runs"
    with ScriptedModelServer(first_choice_or("x")) as server:
        server.answer_chats = 5 + 4 + 1  # the preflight (plain, 3 tool probes, choices), a whole first episode, one more
        completed = _harness("eval", str(submission), "--suite", suite_file, "--model", server.url, "--runs-dir",
                             str(runs), "--run-id", "broken", "--max-consecutive-failures", "2", "--no-progress")  # fmt: skip
    assert completed.returncode == 1, completed.stderr
    run = RunDir(runs / "broken")
    recorded = read_run(run.root)
    results = recorded.results
    assert results is not None and not results.complete and results.episodes_scored == 1 and len(results.missing) == 5
    assert results.failures.by_kind == {"model": 2}
    assert recorded.record.status == "stopped" and "2 infrastructure failures in a row" in str(recorded.record.stop_reason)
    episodes = recorded.episodes()
    assert len(episodes) == 3  # the third and later episodes were never launched
    # the summary says what failed, how often, the first error in full, and which server
    assert "INCOMPLETE" in completed.stdout and "2 infrastructure failures in a row" in completed.stderr
    assert "model 2 (infrastructure, not scored)" in completed.stderr and server.url in completed.stderr
    # nothing recorded is lost: the half-played episode keeps its steps
    partial = [e for e in episodes if e.error_kind == "model" and e.steps > 0]
    assert partial and len(recorded.steps(partial[0])) == partial[0].steps
    # no number of it can be published or compared
    refused = _harness("leaderboard", str(run.root))
    assert refused.returncode != 0 and "incomplete runs have no publishable number" in refused.stderr
    marked = _harness("leaderboard", str(run.root), "--allow-incomplete", "--allow-unsandboxed",  # a test submission, run locally
                      "--allow-unverified")  # fmt: skip
    assert marked.returncode == 0 and "INCOMPLETE (1/6)" in marked.stdout
    compared = _harness("compare", str(run.root), str(run.root))
    assert compared.returncode != 0 and "not complete" in compared.stderr


def test_a_crashed_embedded_server_stops_the_run_with_its_signal_and_log(tmp_path: Path) -> None:
    submission = write_submission(tmp_path / "sub", ASKER)
    runs = tmp_path / "runs"
    process = subprocess.Popen([sys.executable, "-m", "harness.cli", "eval", str(submission), "--suite", "smoke",
                                "--max-steps", "200", "--runs-dir", str(runs), "--run-id", "crash", "--no-progress"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(len(read_jsonl(p)) >= 2 for p in runs.glob("crash/episodes/*/*/*/steps.jsonl")):
            time.sleep(0.2)
        servers = [pid for pid in _children(process.pid) if "llama_cpp.server" in _cmdline(pid)]
        assert servers, "the embedded model server was not found"
        os.kill(servers[0], signal.SIGSEGV)  # the crash a native build gave on another CPU
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 1
    assert "was killed by signal SIGSEGV" in stderr and "harness-llama-" in stderr and ".log" in stderr
    run = RunDir(runs / "crash")
    assert read_run(run.root).record.status == "stopped" and not read_json(run.results_file)["complete"]
    assert "INCOMPLETE" in stdout


def test_a_worker_stuck_in_c_is_ended_from_outside_and_scored_as_the_scaffolds_fault(tmp_path: Path) -> None:
    stuck = ASKER.replace("        return self.chat(", "        if step.index == 2:\n"
                          "            sum(range(10**13))  # C code that never checks for signals\n"
                          "        return self.chat(")  # fmt: skip
    assert "10**13" in stuck
    submission = write_submission(tmp_path / "sub", stuck)
    (tmp_path / "one.yaml").write_text("name: one\nenvs:\n  minihack: {tasks: [MazeWalk-9x9], seeds: [0], max_steps: 5}\n")
    with ScriptedModelServer(first_choice_or("x")) as server:
        started = time.monotonic()
        run, results = run_eval(EvalOptions(submission=str(submission), suite=str(tmp_path / "one.yaml"),
                                            model=server.url, runs_dir=str(tmp_path / "runs"), step_timeout_s=1.0,
                                            show_progress=False))  # fmt: skip
    assert time.monotonic() - started < 60
    episode = read_run(run.root).episodes()[0]
    assert episode.error_kind == "scaffold" and "ended from outside" in str(episode.error)
    assert results.complete and results.envs["minihack"].episodes == 1  # the scaffold's fault is scored
    # the step in flight wrote to memory but was never recorded: the directory follows the records
    assert episode.steps == 2 and (Path(episode.spec["episode_dir"]) / "memory" / "notes.md").read_text() == "seen\n" * 2


def test_an_episode_past_its_wall_clock_cap_is_ended_and_not_scored(tmp_path: Path) -> None:
    submission = write_submission(tmp_path / "sub", ASKER)
    (tmp_path / "one.yaml").write_text("name: one\nenvs:\n  minihack: {tasks: [MazeWalk-9x9], seeds: [0], max_steps: 100}\n")
    with ScriptedModelServer(first_choice_or("x")) as server:
        server.latency_s = 0.3  # 100 steps need 30 s; the cap is 5 s
        run, results = run_eval(EvalOptions(submission=str(submission), suite=str(tmp_path / "one.yaml"),
                                            model=server.url, runs_dir=str(tmp_path / "runs"), episode_timeout_s=5.0,
                                            show_progress=False))  # fmt: skip
    episode = read_run(run.root).episodes()[0]
    assert episode.error_kind == "episode_timeout" and episode.steps < 100
    assert "wall-clock cap of 5 s" in str(episode.error)
    assert not results.complete and results.missing == ["minihack/MazeWalk-9x9/0"]


def test_resuming_with_another_adapter_is_refused(tmp_path: Path, suite_file: str) -> None:
    submission = write_submission(tmp_path / "sub", ASKER)
    adapters = []
    for number in (1, 2):
        folder = tmp_path / f"a{number}" / "adapter"
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text(json.dumps({"r": 4}))
        (folder / "adapter_model.safetensors").write_bytes(bytes([number]) * 64)
        adapters.append(str(folder))
    with ScriptedModelServer(first_choice_or("x"), owned_by="vllm") as server:
        options = EvalOptions(submission=str(submission), suite=suite_file, model=server.url, adapter=adapters[0],
                              runs_dir=str(tmp_path / "runs"), run_id="r", env=("minihack",), seeds="0",
                              show_progress=False)  # fmt: skip
        run, _ = run_eval(options)
        assert str(read_run(run.root).record.model.adapter).startswith("adapter-")
        options.resume, options.adapter = True, adapters[1]
        with pytest.raises(EvalError, match="model.adapter_hash: recorded 'sha256:"):
            run_eval(options)


@pytest.mark.parametrize("phase, age, kind", [
    ("scaffold", 12.0, "scaffold"), ("scaffold", 5.0, None), ("env", 301.0, "env"), ("env", 100.0, None),
    ("model", 10_000.0, "model"), ("model", 600.0, None), ("harness", 10_000.0, None),
])  # fmt: skip
def test_the_watchdog_attributes_a_stuck_worker_to_the_phase_it_is_stuck_in(phase: str, age: float, kind: str | None) -> None:
    limits = WatchLimits.of(step_timeout_s=1.0, model_timeout_s=600.0, model_retries=4, env_timeout_s=300.0,
                            episode_timeout_s=0.0)  # fmt: skip
    verdict = overdue(limits, Phase(phase, since=1000.0, step=3), started=0.0, now=1000.0 + age)
    assert (verdict.kind if verdict else None) == kind


def test_the_wall_clock_cap_holds_whatever_the_phase() -> None:
    limits = WatchLimits.of(1.0, 600.0, 4, 300.0, episode_timeout_s=60.0)
    verdict = overdue(limits, Phase("model", since=50.0, step=7), started=0.0, now=61.0)
    assert verdict is not None and verdict.kind == "episode_timeout" and "step 7" in verdict.message


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


DIES_ONCE = """
import os
from harness.agent import Scaffold, Step

class Agent(Scaffold):
    def step(self, step: Step) -> str:
        if step.index == 2 and not os.path.exists("launches.jsonl"):  # the first launch only
            os._exit(9)  # the worker dies, as on a lost node
        return self.chat([{"role": "user", "content": step.observation}], choices=list(step.actions))
"""


def test_many_workers_dying_at_once_are_launched_again_and_do_not_stop_the_run(tmp_path: Path, suite_file: str) -> None:
    """Six launches end dead at about the same time (a lost node): each is launched again and
    continues; only an episode's last launch counts toward the consecutive-failure rule."""
    submission = write_submission(tmp_path / "sub", DIES_ONCE)
    with ScriptedModelServer(first_choice_or("x")) as server:
        run, results = run_eval(EvalOptions(submission=str(submission), suite=suite_file, model=server.url, workers=6,
                                            runs_dir=str(tmp_path / "runs"), max_consecutive_failures=2,
                                            show_progress=False))  # fmt: skip
    assert results.complete and results.episodes_scored == 6, results.failures
    for episode in read_run(run.root).episodes():
        launches = read_jsonl(Path(episode.spec["episode_dir"]) / "launches.jsonl")
        assert [launch["outcome"].split(":")[0] for launch in launches] == ["worker", episode.status]
