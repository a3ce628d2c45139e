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
from harness.runtime.ray import STREAM_INTERVAL_S
from harness.tracks.eval import EvalOptions, run_eval

pytestmark = [pytest.mark.ray, pytest.mark.slow]
SEEDS = list(range(16))
SUITE = f"name: sixteen\nenvs:\n  crafter: {{tasks: [crafter], seeds: {SEEDS}, max_steps: 10}}\n"


def _options(tmp_path: Path, url: str, run_id: str, **extra: object) -> EvalOptions:
    return EvalOptions(submission="submissions/automem-seed", suite=str(tmp_path / "sixteen.yaml"), model=url,
                       runs_dir=str(tmp_path / "runs"), run_id=run_id, show_progress=False, **extra)  # type: ignore[arg-type]


def _kill_when_busy(cluster: LocalRayCluster, killed: dict[str, object], done: threading.Event) -> None:
    """Kill worker node 0 once an episode running there has recorded steps that have had time to
    stream to the run (the run is under way, and the kill lands inside that episode)."""
    killed["looks"] = 0
    while not done.is_set():
        # a worker's last argument is its scratch job.json, beside the episode's own steps.jsonl
        steps = [Path(command[-1]).parent / STEPS_FILE for command in cluster.command_lines_on(0, "harness.agent.worker")]
        recorded = [path for path in steps if path.is_file() and path.read_bytes().count(b"\n") >= 3]
        killed["looks"], killed["recorded"] = int(killed["looks"]) + 1, len(recorded)  # type: ignore[call-overload]
        if recorded:
            time.sleep(STREAM_INTERVAL_S * 2)  # what it recorded has been sent
            killed["node"] = cluster.node_id(0)
            killed["processes"] = cluster.kill_node(0)
            return
        time.sleep(0.2)


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
        killer = threading.Thread(target=_kill_when_busy, args=(cluster, killed, done))
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
