"""Scale-out that survives its cluster (issue 23): a real Ray cluster of a head and two worker
nodes on this machine, a suite of 16 episodes, one worker node killed mid-run. The run completes,
each episode's records equal an undisturbed run's, no step is recorded twice, and the loss is in
the records."""

import json
import threading
import time
from pathlib import Path

import pytest

from harness.bench.ray_cluster import ClusterUnavailable, LocalRayCluster
from harness.models.scripted import ScriptedModelServer, answer_by_content
from harness.runs.fingerprint import differing_parts, episode_fingerprint
from harness.runs.launches import read_launches
from harness.runs.layout import STEPS_FILE
from harness.runs.read import read_run
from harness.tracks.eval import EvalOptions, run_eval

pytestmark = [pytest.mark.ray, pytest.mark.slow]
SEEDS = list(range(16))
SUITE = f"name: sixteen\nenvs:\n  crafter: {{tasks: [crafter], seeds: {SEEDS}, max_steps: 10}}\n"


def _options(tmp_path: Path, url: str, run_id: str, **extra: object) -> EvalOptions:
    return EvalOptions(submission="submissions/automem-seed", suite=str(tmp_path / "sixteen.yaml"), model=url,
                       runs_dir=str(tmp_path / "runs"), run_id=run_id, show_progress=False, **extra)  # type: ignore[arg-type]


def _kill_when_busy(cluster: LocalRayCluster, run_root: Path, killed: dict[str, object], done: threading.Event) -> None:
    """Kill worker node 0 once an episode running there has steps in the run's own copy of its
    folder (streamed there: the driver's copy, not the node's scratch, which a loaded machine
    streams seconds late) and has more left to play (the kill lands inside that episode)."""
    killed["looks"] = 0
    while not done.is_set():
        streamed = []
        # a worker's last argument is its scratch job.json, beside the episode's own steps.jsonl
        for command in cluster.command_lines_on(0, "harness.agent.worker"):
            try:
                episode = json.loads(Path(command[-1]).read_text())["episode"]
                scratch = (Path(command[-1]).parent / STEPS_FILE).read_bytes().count(b"\n")
                driver = run_root / "episodes" / episode["env"] / episode["task"] / str(episode["seed"]) / STEPS_FILE
                copied = driver.read_bytes().count(b"\n") if driver.is_file() else 0
            except (OSError, ValueError, KeyError):
                continue  # starting or ending: look again
            if copied >= 1 and scratch < episode["max_steps"] - 2:
                streamed.append(driver)
        killed["looks"], killed["streamed"] = int(killed["looks"]) + 1, len(streamed)  # type: ignore[call-overload]
        if streamed:
            killed["node"] = cluster.node_id(0)
            killed["processes"] = cluster.kill_node(0)
            return
        time.sleep(0.1)


def test_a_run_loses_a_worker_node_mid_run_and_ends_as_an_undisturbed_one(tmp_path: Path) -> None:
    (tmp_path / "sixteen.yaml").write_text(SUITE)
    cluster = LocalRayCluster(workers=2, cpus_per_worker=2)
    try:
        cluster.start()
    except ClusterUnavailable as unavailable:
        pytest.skip(f"no Ray cluster here: {unavailable}")
    with cluster, ScriptedModelServer(answer_by_content, owned_by="vllm") as model:
        model.latency_s = 0.03  # a step takes a few tenths of a second: the kill lands inside episodes
        run_eval(_options(tmp_path, model.url, "undisturbed", workers=2))
        killed: dict[str, object] = {}
        done = threading.Event()
        killer = threading.Thread(target=_kill_when_busy, args=(cluster, tmp_path / "runs" / "ray", killed, done))
        killer.start()
        try:
            run, results = run_eval(_options(tmp_path, model.url, "ray", runtime="ray", ray_address=cluster.address, workers=4))
        finally:
            done.set()
            killer.join()
    assert killed.get("processes"), f"node 0 never ran an episode with recorded steps: {killed}"
    assert results.complete and results.episodes_scored == len(SEEDS)
    undisturbed, disturbed = read_run(tmp_path / "runs" / "undisturbed"), read_run(run.root)
    moved = []
    for episode in disturbed.episodes():
        folder = disturbed.episode_folder(episode)
        twin = undisturbed.episode_folder(next(e for e in undisturbed.episodes() if e.key == episode.key))
        mine, theirs = episode_fingerprint(folder), episode_fingerprint(twin)
        assert mine == theirs, f"{episode.key}: {differing_parts(mine, theirs)}"
        indices = [json.loads(line)["index"] for line in (folder / STEPS_FILE).read_text().splitlines()]
        assert indices == list(range(len(indices))), episode.key  # no step recorded twice
        launches = read_launches(folder)
        if len(launches) > 1:
            moved.append((episode, launches))
    assert moved, "no episode was moved off the killed node"
    continued = 0
    for episode, launches in moved:
        first, last = launches[0], launches[-1]
        assert first.placement["node"] == killed["node"] and first.outcome.startswith("worker: "), first
        assert last.placement["node"] != killed["node"] and last.outcome in ("completed", "truncated"), last
        assert last.steps_before <= first.steps_after  # it continued from what had been streamed, never beyond
        if last.steps_before > 0:  # an episode the kill caught before its first step streamed starts afresh
            assert episode.resumes and episode.resumes[-1].continued, episode.resumes
            continued += 1
    assert continued, f"no moved episode continued from streamed steps: {[launches for _, launches in moved]}"
