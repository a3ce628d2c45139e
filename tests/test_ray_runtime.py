"""The Ray runtime on a local Ray instance started by the test."""

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.models.embedded import free_port
from harness.models.scripted import ScriptedModelServer, first_choice_or
from harness.runs.layout import read_json, read_jsonl
from harness.tracks.eval import EvalOptions, run_eval

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
