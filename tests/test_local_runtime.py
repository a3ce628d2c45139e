"""The local runtime's forked workers (runtime.local): they behave as freshly started ones,
with the harness's environment and working directory as they are at launch."""

import json
import os
from pathlib import Path

import pytest

from harness.models.scripted import ScriptedModelServer
from harness.runs.read import read_run
from harness.tracks.eval import EvalOptions, run_eval

from conftest import write_submission

SPY = """
import os
from harness.agent import Scaffold

class Agent(Scaffold):
    def step(self, step):
        self.memory.write("seen.txt", f"{os.environ.get('HARNESS_TEST_MARK')} {os.getpid()} {os.getsid(0) == os.getpid()}")
        return step.actions[0]
"""


def _seen(tmp_path: Path, url: str, start: str, run_id: str) -> list[str]:
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: tiny\nenvs:\n  nethack: {seeds: [0, 1], max_steps: 1}\n")
    submission = write_submission(tmp_path / "spy", SPY)
    run, results = run_eval(EvalOptions(submission=str(submission), suite=str(suite), model=url, workers=2,
                                        runs_dir="runs", run_id=run_id, show_progress=False, worker_start=start))  # fmt: skip
    assert results.complete
    recorded = read_run(run.root)
    return [(recorded.episode_folder(e) / "memory" / "seen.txt").read_text() for e in recorded.episodes()]


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_workers_get_the_environment_and_folder_of_the_moment_they_are_launched(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: str) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)  # runs_dir "runs" is relative: resolved in the worker's folder
    with ScriptedModelServer(lambda request: "ok") as server:
        monkeypatch.setenv("HARNESS_TEST_MARK", "first")
        first = _seen(tmp_path, server.url, start, "first")
        monkeypatch.setenv("HARNESS_TEST_MARK", "second")  # a fork server started above must not matter
        second = _seen(tmp_path, server.url, start, "second")
    assert [text.split()[0] for text in first] == ["first", "first"]
    assert [text.split()[0] for text in second] == ["second", "second"]
    pids = {text.split()[1] for text in first + second}
    assert len(pids) == 4 and str(os.getpid()) not in pids  # a process per episode, never the harness
    assert all(text.split()[2] == "True" for text in first + second)  # each in its own session
    assert (tmp_path / "runs" / "second" / "results.json").exists()


def test_a_forked_child_does_not_run_the_launching_program_again(tmp_path: Path) -> None:
    """multiprocessing runs the parent's main module again in every child it prepares; the fork
    server's children skip it (harness.runtime.fork_preload): the `harness` CLI's imports cost each
    worker some 0.23 s of CPU. The launching program counts its own runs in a file."""
    import subprocess
    import sys

    program = tmp_path / "launcher.py"
    runs = tmp_path / "runs.txt"
    program.write_text(
        "import os\n"
        f"with open({str(runs)!r}, 'a') as count:\n"
        "    count.write(f'{os.getpid()}\\n')\n"
        "if __name__ == '__main__':\n"
        "    from harness.runtime.local import run_forked\n"
        "    code, out, err = run_forked(os.getcwd, timeout_s=60)\n"
        "    assert code == 0, err\n")  # fmt: skip
    done = subprocess.run([sys.executable, str(program)], cwd=Path(__file__).parent.parent, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(runs.read_text().split()) == 1  # the launcher alone: no child ran it again


def test_step_events_come_at_most_once_an_interval_and_count_every_step(capsys: pytest.CaptureFixture[str]) -> None:
    """A worker tells its steps to the scheduler in few lines, each saying how many steps it
    stands for; the steps since the last line are told before the episode ends."""
    from harness.agent.worker import StepEvents

    events = StepEvents(interval_s=3600.0)
    for index in range(5):
        events({"event": "step", "index": index, "progression": 0.0})
    events.flush()
    events.flush()  # nothing left: no line
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["index"], line["steps"]) for line in lines] == [(0, 1), (4, 4)]
    assert sum(line["steps"] for line in lines) == 5
