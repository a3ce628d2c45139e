"""Mid-episode resume (issue 13 part 4): a killed run continues each episode from its last
recorded step (the game replayed on its seed, the memory rebuilt from the recorded operations,
the scaffold's state restored), and the finished trace equals an uninterrupted run's."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness.models.scripted import ScriptedModelServer, answer_by_content
from harness.runs.fingerprint import episode_fingerprint
from harness.runs.launches import read_launches
from harness.runs.layout import EPISODE_FILE, STEPS_FILE
from harness.runs.read import read_run

from conftest import write_submission

SEED = "submissions/automem-seed"
STEPS = 10


def _eval(runs: Path, url: str, submission: str, *extra: str, steps: int = STEPS) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "harness.cli", "eval", submission, "--suite", "smoke", "--max-steps", str(steps),
               "--model", url, "--runs-dir", str(runs), "--run-id", "run", "--workers", "3", "--no-progress", *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_steps(runs: Path, at_least: int, process: subprocess.Popen[str], episodes: int = 3) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        counts = [len(p.read_text().splitlines()) for p in (runs / "run" / "episodes").glob(f"*/*/*/{STEPS_FILE}")]
        if len(counts) == episodes and min(counts) >= at_least:
            return
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        time.sleep(0.05)
    pytest.fail("the episodes did not get under way")


def _kill_midway(process: subprocess.Popen[str], runs: Path, at_least: int, episodes: int = 3) -> None:
    """SIGKILL the harness and every worker once each episode recorded `at_least` steps."""
    _wait_for_steps(runs, at_least, process, episodes)
    family = [process.pid] + [child.pid for child in psutil.Process(process.pid).children(recursive=True)]
    for pid in family:
        os.kill(pid, signal.SIGKILL)
    process.wait()
    for pid in family[1:]:
        psutil.wait_procs([p for p in psutil.process_iter() if p.pid == pid], timeout=10)


def _finish(process: subprocess.Popen[str]) -> str:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    return output


@pytest.mark.slow
def test_a_killed_run_continues_every_episode_and_ends_as_an_uninterrupted_one(tmp_path: Path) -> None:
    with ScriptedModelServer(answer_by_content, owned_by="vllm") as server:
        server.latency_s = 0.05  # a step takes ~0.15 s: the kill lands in the middle of episodes
        _finish(_eval(tmp_path / "whole", server.url, SEED))
        interrupted = _eval(tmp_path / "killed", server.url, SEED)
        _kill_midway(interrupted, tmp_path / "killed", at_least=3)
        killed_at = {p.parent.relative_to(tmp_path / "killed").as_posix(): len(p.read_text().splitlines())
                     for p in (tmp_path / "killed" / "run" / "episodes").glob(f"*/*/*/{STEPS_FILE}")}  # fmt: skip
        assert not list((tmp_path / "killed" / "run" / "episodes").glob(f"*/*/*/{EPISODE_FILE}"))
        output = _finish(_eval(tmp_path / "killed", server.url, SEED, "--resume"))
    whole, resumed = read_run(tmp_path / "whole" / "run"), read_run(tmp_path / "killed" / "run")
    assert resumed.results is not None and resumed.results.complete
    for episode in resumed.episodes():
        folder = resumed.episode_folder(episode)
        twin = whole.episode_folder(next(e for e in whole.episodes() if e.key == episode.key))
        assert episode_fingerprint(folder) == episode_fingerprint(twin), episode.key
        (resume,) = episode.resumes
        assert resume.continued and resume.from_step >= 3 and resume.from_step <= killed_at[
            folder.relative_to(tmp_path / "killed").as_posix()], resume
        assert episode.progression == next(e for e in whole.episodes() if e.key == episode.key).progression
    assert "continued 3 episodes" in output, output
    verify = subprocess.run([sys.executable, "-m", "harness.cli", "verify", str(tmp_path / "killed" / "run")],
                            capture_output=True, text=True)  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr


NO_HOOK = """
from harness.agent import Scaffold

class Agent(Scaffold):
    def reset(self, task):
        self.seen = 0

    def step(self, step):
        self.seen += 1
        return self.chat([{"role": "user", "content": step.observation}], choices=list(step.actions), max_tokens=4)
"""


@pytest.mark.slow
def test_a_scaffold_without_a_state_hook_restarts_its_episode_and_keeps_the_earlier_attempt(tmp_path: Path) -> None:
    submission = write_submission(tmp_path / "no-hook", NO_HOOK)
    with ScriptedModelServer(answer_by_content, owned_by="vllm") as server:
        server.latency_s = 0.1  # one call a step
        # (MiniHack's maze ends at once here: the answers lead onto its stairs)
        games = ("--env", "crafter", "--env", "nethack")
        interrupted = _eval(tmp_path / "runs", server.url, str(submission), *games, steps=20)
        _kill_midway(interrupted, tmp_path / "runs", at_least=3, episodes=2)
        assert not list((tmp_path / "runs" / "run" / "episodes").glob(f"*/*/*/{EPISODE_FILE}"))
        output = _finish(_eval(tmp_path / "runs", server.url, str(submission), *games, "--resume", steps=20))
    run = read_run(tmp_path / "runs" / "run")
    for episode in run.episodes():
        (resume,) = episode.resumes
        assert not resume.continued and resume.from_step == 0 and resume.recorded_steps >= 3
        assert "no state hook" in resume.reason
        folder = run.episode_folder(episode)
        earlier = folder / "attempts" / "1" / STEPS_FILE
        assert len(earlier.read_text().splitlines()) >= resume.recorded_steps  # set aside, not deleted
        assert [s.index for s in run.steps(episode)] == list(range(episode.steps))
    assert len(run.episodes()) == 2
    assert "restarted 2 episodes from step 0" in output, output


def _cut_to(folder: Path, kept: int, edit: Any = None) -> None:
    """Make the folder look like a worker killed after `kept` steps, in the middle of the next
    one (its record written as unplayed, then a torn line); `edit` may change a kept record."""
    lines = (folder / STEPS_FILE).read_text().splitlines()
    records = [json.loads(line) for line in lines[:kept]]
    if edit:
        edit(records)
    unplayed = {**json.loads(lines[kept]), "action": None, "valid": False}
    text = "".join(json.dumps(r) + "\n" for r in [*records, unplayed]) + '{"index": 99, "obs'
    (folder / STEPS_FILE).write_text(text)
    (folder / EPISODE_FILE).unlink()


def _run_in_process(tmp_path: Path, url: str, submission: str, resume: bool = False, env: str = "crafter") -> Any:
    from harness.tracks.eval import EvalOptions, run_eval

    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: tiny\nenvs:\n  {env}: {{seeds: [0], max_steps: 6}}\n")
    run, _ = run_eval(EvalOptions(submission=submission, suite=str(suite), model=url, runs_dir=str(tmp_path / "runs"),
                                  run_id="run", show_progress=False, resume=resume))  # fmt: skip
    recorded = read_run(run.root)
    (episode,) = recorded.episodes()
    return recorded, episode


def test_state_is_stored_when_it_changes_and_restored_with_the_game_and_memory(tmp_path: Path) -> None:
    with ScriptedModelServer(answer_by_content, owned_by="vllm") as server:
        run, episode = _run_in_process(tmp_path, server.url, "submissions/context-baseline")
        folder = run.episode_folder(episode)
        whole = episode_fingerprint(folder)
        states = [s.scaffold_state for s in run.steps(episode)]
        assert states[0] == {"history": [], "previous_observation": run.steps(episode)[0].observation}
        assert all(state is not None for state in states)  # the history changes every step
        _cut_to(folder, 3)
        run, episode = _run_in_process(tmp_path, server.url, "submissions/context-baseline", resume=True)
    assert episode_fingerprint(folder) == whole
    (resume,) = episode.resumes
    assert (resume.from_step, resume.recorded_steps, resume.continued) == (3, 3, True)
    discarded = (folder / "discarded-steps.jsonl").read_text().splitlines()
    assert len(discarded) == 1 and json.loads(discarded[0])["action"] is None  # the unplayed step, kept aside


def test_a_large_state_is_kept_beside_the_trace_and_restored_from_its_slot(tmp_path: Path) -> None:
    """BALROG's naive agent keeps 16 steps of history: from the step its state passes 4 KiB the
    record names it by SHA-256 and the state is in scaffold-state/ (the trace stays small)."""
    from harness.agent.state_slots import STATE_DIR

    naive = "submissions/balrog-naive"
    with ScriptedModelServer(answer_by_content, owned_by="vllm") as server:
        run, episode = _run_in_process(tmp_path, server.url, naive, env="nethack")
        folder = run.episode_folder(episode)
        whole = episode_fingerprint(folder)
        steps = run.steps(episode)
        assert steps[0].scaffold_state is not None and steps[0].scaffold_state_sha256 is None  # small: inline
        assert steps[-1].scaffold_state is None and steps[-1].scaffold_state_sha256 is not None
        assert all(len(line) < 12_000 for line in (folder / STEPS_FILE).read_text().splitlines()[-3:])
        _cut_to(folder, 5)  # killed during step 5: the slots hold the states of steps 4 and 5
        run, episode = _run_in_process(tmp_path, server.url, naive, resume=True, env="nethack")
        (resume,) = episode.resumes
        assert resume.continued, resume.reason
        assert episode_fingerprint(folder) == whole
        # the slots lost (a folder copied without them): the episode starts again, and says why
        _cut_to(folder, 5)
        for slot in (folder / STATE_DIR).iterdir():
            slot.unlink()
        run, episode = _run_in_process(tmp_path, server.url, naive, resume=True, env="nethack")
    last = episode.resumes[-1]
    assert not last.continued and "in neither scaffold-state slot" in last.reason
    assert episode_fingerprint(folder) == whole


def test_a_slot_written_over_a_longer_state_reads_back_and_a_torn_one_does_not(tmp_path: Path) -> None:
    """A slot is written over in place and then cut to length: a shorter state over a longer
    one reads back whole; one whose cut never happened (killed between) is not read at all."""
    from harness.agent.state_slots import SLOTS, STATE_DIR, StateSlots

    slots = StateSlots(tmp_path)
    long_text, short_text, third = json.dumps({"h": "x" * 900}), json.dumps({"h": "y"}), json.dumps({"h": "z" * 10})
    slots.write(0, long_text)  # slot a
    slots.write(1, third)  # slot b
    short_sha = slots.write(2, short_text)  # slot a again, over the longer state
    assert StateSlots(tmp_path).read(short_sha) == (True, {"h": "y"})
    path = tmp_path / STATE_DIR / SLOTS[0]
    torn = path.read_bytes() + b"x" * 100 + b'"}}'  # the new text over the old, the old tail still there
    path.write_bytes(torn)
    assert StateSlots(tmp_path).read(short_sha) == (False, None)


def test_a_replay_that_differs_from_the_trace_restarts_the_episode_and_says_where(tmp_path: Path) -> None:
    def tamper(records: list[dict[str, Any]]) -> None:
        records[2]["observation"] += " (edited)"

    with ScriptedModelServer(answer_by_content, owned_by="vllm") as server:
        run, episode = _run_in_process(tmp_path, server.url, SEED)
        folder = run.episode_folder(episode)
        whole = episode_fingerprint(folder)
        assert [s.scaffold_state for s in run.steps(episode)] == [{}] + [None] * 5  # stored once: it never changes
        _cut_to(folder, 4, tamper)
        run, episode = _run_in_process(tmp_path, server.url, SEED, resume=True)
    (resume,) = episode.resumes
    assert not resume.continued and "before step 2 differs from the trace" in resume.reason
    assert episode_fingerprint(folder) == whole  # played again from step 0
    assert "(edited)" in (folder / "attempts" / "1" / STEPS_FILE).read_text()


def _workers(harness: subprocess.Popen[str]) -> list[psutil.Process]:
    """The episode workers: the children of the harness's fork server."""
    servers = [c for c in psutil.Process(harness.pid).children() if "forkserver" in " ".join(c.cmdline())]
    return [worker for server in servers for worker in server.children()]


def _in_run(runs: Path) -> list[psutil.Process]:
    """The processes working in the run's folders (workers and their games)."""
    found = []
    for process in psutil.process_iter():
        try:
            if str(runs) in process.cwd():
                found.append(process)
        except psutil.Error:
            continue
    return found


@pytest.mark.slow
def test_a_killed_worker_is_launched_again_in_the_run_and_a_killed_harness_leaves_no_worker_behind(tmp_path: Path) -> None:
    with ScriptedModelServer(answer_by_content, owned_by="vllm") as server:
        server.latency_s = 0.05
        _finish(_eval(tmp_path / "whole", server.url, SEED))
        # one worker killed: its episode is launched again at once and continues, the run goes on
        running = _eval(tmp_path / "worker", server.url, SEED)
        _wait_for_steps(tmp_path / "worker", 3, running)
        victim = _workers(running)[0]
        victim_folder = Path(victim.cwd())
        victim.kill()
        output = _finish(running)
        # the harness killed alone: its workers and games end with it, --resume continues
        running = _eval(tmp_path / "harness", server.url, SEED)
        _wait_for_steps(tmp_path / "harness", 3, running)
        assert _in_run(tmp_path / "harness")
        running.kill()
        running.wait()
        _, alive = psutil.wait_procs(_in_run(tmp_path / "harness"), timeout=10)
        assert not alive, [p.cmdline() for p in alive]  # no orphan goes on writing into the run
        _finish(_eval(tmp_path / "harness", server.url, SEED, "--resume"))
    whole = read_run(tmp_path / "whole" / "run")
    for name in ("worker", "harness"):
        run = read_run(tmp_path / name / "run")
        assert run.results is not None and run.results.complete
        for episode in run.episodes():
            twin = whole.episode_folder(next(e for e in whole.episodes() if e.key == episode.key))
            assert episode_fingerprint(run.episode_folder(episode)) == episode_fingerprint(twin), (name, episode.key)
    launches = read_launches(victim_folder)
    assert len(launches) == 2 and launches[0].outcome.startswith("worker: worker exited") and launches[1].steps_before >= 3
    assert "INFRASTRUCTURE: 1 launches ended with their worker or game dead" in output, output
