"""The Ray runtime on a local Ray instance started by the test."""

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.models.embedded import free_port
from harness.models.scripted import ScriptedModelServer, first_choice_or
from harness.runs.launches import read_launches
from harness.runs.layout import read_json, read_jsonl
from harness.runs.read import read_run
from harness.tracks.eval import EvalOptions, run_eval

from conftest import write_submission

pytestmark = pytest.mark.ray
SUITE = "name: two\nenvs:\n  crafter: {tasks: [crafter], seeds: [0], max_steps: 4}\n  minihack: {tasks: [MazeWalk-9x9], seeds: [0, 1], max_steps: 4}\n"


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    ray = shutil.which("ray", path=str(Path(sys.executable).parent))
    if ray is None:
        pytest.skip("ray is not installed (pip install '.[ray]')")
    port = free_port()
    started = subprocess.run([ray, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                              "--disable-usage-stats"], capture_output=True, text=True, timeout=180)  # fmt: skip
    assert started.returncode == 0, started.stderr
    yield f"127.0.0.1:{port}"
    subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120)


def test_ray_runtime_fills_the_same_run_directory_as_local(ray_address: str, tmp_path: Path) -> None:
    (tmp_path / "two.yaml").write_text(SUITE)
    with ScriptedModelServer(first_choice_or("noted"), owned_by="vllm") as model:
        runs = {}
        for runtime in ("local", "ray"):
            runs[runtime], results = run_eval(EvalOptions(
                submission="submissions/automem-fixed-slots", suite=str(tmp_path / "two.yaml"), model=model.url,
                runtime=runtime, ray_address=ray_address, workers=2, runs_dir=str(tmp_path / "runs"),
                run_id=runtime, show_progress=False))  # fmt: skip
            assert results.complete and results.episodes_recorded == 3
    keys = ("observation", "action", "reward", "progression")
    for env, task, seed in (("crafter", "crafter", 0), ("minihack", "MazeWalk-9x9", 1)):
        local = read_jsonl(runs["local"].episode_dir(env, task, seed) / "steps.jsonl")
        ray = read_jsonl(runs["ray"].episode_dir(env, task, seed) / "steps.jsonl")
        assert [{k: s[k] for k in keys} for s in local] == [{k: s[k] for k in keys} for s in ray]
        assert (runs["ray"].episode_dir(env, task, seed) / "memory" / "log.md").exists()
    assert read_json(runs["ray"].run_file)["runtime"] == "ray"


ASKER = """
from harness.agent import Scaffold, Step

class Agent(Scaffold):
    def step(self, step: Step) -> str:
        self.memory.append("notes.md", "seen\\n")
        if step.index == STUCK_AT:
            sum(range(10**13))  # C code that never checks for signals
        return self.chat([{"role": "user", "content": step.observation}], choices=list(step.actions))
"""


@pytest.mark.parametrize("limit", ["step", "episode"])
def test_the_watchdog_ends_a_remote_episode_and_keeps_the_steps_it_streamed(ray_address: str, limit: str,
                                                                             tmp_path: Path) -> None:  # fmt: skip
    """A worker stuck in C on a Ray node, or past its wall-clock cap, is ended from the driver and
    attributed as a local one is, with the steps it played (they were streamed before)."""
    submission = write_submission(tmp_path / "sub", ASKER.replace("STUCK_AT", "3"))
    (tmp_path / "one.yaml").write_text("name: one\nenvs:\n  minihack: {tasks: [MazeWalk-9x9], seeds: [0], max_steps: 8}\n")
    caps = {"step_timeout_s": 1.0} if limit == "step" else {"episode_timeout_s": 30.0}  # well past a loaded start
    with ScriptedModelServer(first_choice_or("x")) as model:
        started = time.monotonic()
        run, results = run_eval(EvalOptions(submission=str(submission), suite=str(tmp_path / "one.yaml"), model=model.url,
                                            runtime="ray", ray_address=ray_address, runs_dir=str(tmp_path / "runs"),
                                            show_progress=False, **caps))  # type: ignore[arg-type]
    assert time.monotonic() - started < 120
    (episode,) = read_run(run.root).episodes()
    expected = "scaffold" if limit == "step" else "episode_timeout"
    assert episode.error_kind == expected and "ended from outside" in str(episode.error), episode.error
    assert episode.steps == 3  # the three played steps came back before the worker was ended
    folder = Path(episode.spec["episode_dir"])
    assert (folder / "memory" / "notes.md").read_text() == "seen\n" * 3  # the memory follows the records
    assert len(read_launches(folder)) == 1  # ended by the watchdog: not launched again
