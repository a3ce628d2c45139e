"""`harness bench chaos`: a suite played under a schedule of faults, against an undisturbed run.

The same 16 episodes (automem-seed on Crafter) run once undisturbed (local runtime), then under
faults on the local runtime and on a local multi-node Ray cluster (bench.ray_cluster). Faults
land when the run has recorded a given share of its steps: a worker killed with SIGKILL, a game
process (the env server) killed, the model server killed and started again a second later, the
harness itself killed with SIGKILL and started again with --resume, and on Ray a worker node
killed (its raylet and every process under it).

The model server answers by content (models.scripted.answer_by_content) in its own process and
keeps a ledger of the action calls it answered (one per step played), so what was played twice
is counted from outside the harness. For each runtime the table gives faults injected and
survived (the episodes running when it landed end with records equal to the undisturbed run's),
episodes completed, steps recorded, steps played, steps replayed (played again after a fault:
the steps in flight), steps lost (recorded in the undisturbed run but missing from the final
records) and whether every episode's records equal the undisturbed run's (runs.fingerprint).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from tabulate import tabulate

from harness.bench.ray_cluster import ClusterUnavailable, LocalRayCluster
from harness.bench.report import write_section
from harness.models.embedded import free_port
from harness.models.scripted import ScriptedModelServer, answer_by_content, requested_choices
from harness.runs.fingerprint import episode_fingerprint
from harness.runs.layout import EPISODE_FILE, STEPS_FILE
from harness.runs.read import read_run

SUBMISSION = "submissions/automem-seed"
EPISODES, STEPS, LATENCY_S = 16, 16, 0.03
LOCAL_FAULTS = (("worker", 0.12), ("env", 0.28), ("model", 0.44), ("harness", 0.6), ("worker", 0.78))
RAY_FAULTS = (("worker", 0.12), ("env", 0.26), ("node", 0.4), ("model", 0.55), ("harness", 0.68), ("worker", 0.84))
RUN_TIMEOUT_S = 900


def _serve(port: int, ledger: str) -> None:
    """The model server's process: answers by content; each action call answered is a ledger line."""
    def respond(request: dict[str, Any]) -> Any:
        answer = answer_by_content(request)
        if requested_choices(request) and request.get("max_tokens") != 1:
            digest = hashlib.sha256(json.dumps(request["messages"], sort_keys=True).encode()).hexdigest()
            with open(ledger, "a") as out:
                out.write(f"{time.time():.3f} {digest}\n")
        return answer

    server = ScriptedModelServer(respond, port=port, owned_by="vllm", keep_requests=False)
    server.latency_s = LATENCY_S
    server.serve_forever()


class ModelServerProcess:
    """The scripted model server in a process of its own, so that it can be killed and restarted."""

    def __init__(self, ledger: Path) -> None:
        self.port, self.ledger = free_port(), ledger
        self.process: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        self.process = multiprocessing.get_context("spawn").Process(target=_serve, args=(self.port, str(self.ledger)),
                                                                    daemon=True)  # fmt: skip
        self.process.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if any(c.laddr.port == self.port for c in psutil.net_connections("tcp") if c.status == "LISTEN"):
                return
            time.sleep(0.05)
        raise RuntimeError("the scripted model server did not start")

    def kill(self) -> None:
        self.process.kill()
        self.process.join()

    def answered(self) -> list[tuple[float, str]]:
        if not self.ledger.exists():
            return []
        return [(float(t), d) for t, d in (line.split() for line in self.ledger.read_text().splitlines())]


@dataclass
class Fault:
    kind: str
    at_share: float  # of the suite's steps recorded when it lands
    landed: float = 0.0  # time.time()
    affected: list[str] = field(default_factory=list)  # the episodes running when it landed
    detail: str = ""


def _suite(folder: Path) -> Path:
    path = folder / "chaos.yaml"
    path.write_text(f"name: chaos\nenvs:\n  crafter: {{tasks: [crafter], seeds: {list(range(EPISODES))}, max_steps: {STEPS}}}\n")
    return path


def _harness(folder: Path, url: str, run_id: str, runtime: list[str], resume: bool) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "harness.cli", "eval", SUBMISSION, "--suite", str(_suite(folder)), "--model", url,
               "--runs-dir", str(folder / "runs"), "--run-id", run_id, "--workers", "4", "--no-progress", *runtime]  # fmt: skip
    return subprocess.Popen(command + (["--resume"] if resume else []), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def _recorded(episodes: Path) -> tuple[int, list[str]]:
    """(steps recorded in all episodes, keys of the episodes under way)."""
    total, running = 0, []
    for steps in episodes.glob(f"*/*/*/{STEPS_FILE}"):
        total += steps.read_bytes().count(b"\n")
        if not (steps.parent / EPISODE_FILE).exists():
            running.append(steps.parent.relative_to(episodes).as_posix())
    return total, running


def _command(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def _workers(harness: psutil.Process, cluster: LocalRayCluster | None) -> list[psutil.Process]:
    """The episode workers running now: forked from the harness's fork server (local), or started
    as `python -m harness.agent.worker` under a raylet (Ray; its game, forked from it, is not one)."""
    found = [worker for server in _children(harness) if "forkserver" in _command(server) for worker in _children(server)]
    for raylet in cluster.raylets().values() if cluster else ():
        try:
            family = raylet.children(recursive=True)
        except psutil.Error:
            continue
        for process in family:
            try:
                parent = process.parent()
            except psutil.Error:
                continue
            if "harness.agent.worker" in _command(process) and parent and "harness.agent.worker" not in _command(parent):
                found.append(process)
    return found


def _inject(fault: Fault, harness: subprocess.Popen[str], model: ModelServerProcess, cluster: LocalRayCluster | None,
            running: list[str]) -> None:  # fmt: skip
    fault.landed, fault.affected = time.time(), list(running)
    workers = _workers(psutil.Process(harness.pid), cluster)
    if fault.kind in ("worker", "env"):
        targets = workers if fault.kind == "worker" else [c for w in workers for c in _children(w)]
        if targets:
            targets[0].kill()
            fault.detail = f"pid {targets[0].pid}"
    elif fault.kind == "model":
        model.kill()
        time.sleep(1.0)
        model.start()
    elif fault.kind == "node" and cluster is not None:
        fault.detail = f"{cluster.kill_node(0)} processes"
    elif fault.kind == "harness":
        harness.send_signal(signal.SIGKILL)
        harness.wait()


def _children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return list(process.children())
    except psutil.Error:
        return []


def _run_with_faults(folder: Path, model: ModelServerProcess, run_id: str, runtime: list[str],
                     faults: list[Fault], cluster: LocalRayCluster | None) -> tuple[float, int]:  # fmt: skip
    """Play the suite while injecting `faults`; returns (wall s, times the harness was started)."""
    started, starts = time.monotonic(), 1
    harness = _harness(folder, model.url, run_id, runtime, resume=False)
    pending = list(faults)
    episodes = folder / "runs" / run_id / "episodes"
    while time.monotonic() - started < RUN_TIMEOUT_S:
        if harness.poll() is not None:  # the run ended (a killed harness is started again at once)
            break
        recorded, running = _recorded(episodes)
        if pending and recorded >= pending[0].at_share * EPISODES * STEPS:
            fault = pending.pop(0)
            _inject(fault, harness, model, cluster, running)
            if fault.kind == "harness":
                time.sleep(2.0)  # its workers end with it (they die with their parent)
                harness, starts = _harness(folder, model.url, run_id, runtime, resume=True), starts + 1
        time.sleep(0.1)
    harness.wait(timeout=RUN_TIMEOUT_S)
    return time.monotonic() - started, starts


def _row(runtime: str, folder: Path, run_id: str, reference: Path, faults: list[Fault], answered: list[tuple[float, str]],
         baseline: Counter[str], wall: float) -> list[Any]:  # fmt: skip
    run = read_run(folder / "runs" / run_id)
    undisturbed = read_run(reference)
    equal: dict[str, bool] = {}
    recorded = lost = 0
    for episode in undisturbed.episodes():
        twin = undisturbed.episode_folder(episode)
        folder_of = run.root / "episodes" / episode.key
        mine = episode_fingerprint(folder_of) if folder_of.exists() else None
        theirs = episode_fingerprint(twin)
        equal[episode.key] = mine == theirs
        recorded += len(mine["steps"]) if mine else 0
        lost += max(0, len(theirs["steps"]) - (len(mine["steps"]) if mine else 0))
    extra = _replays(answered, baseline)
    for fault in faults:
        window_end = min((f.landed for f in faults if f.landed > fault.landed), default=float("inf"))
        fault.detail += f"; {sum(1 for t in extra if fault.landed <= t < window_end)} steps replayed"
    completed = sum(1 for e in run.episodes() if e.status != "errored")
    survived = sum(1 for f in faults if f.landed and all(equal.get(key, False) for key in f.affected))
    injected = ", ".join(f.kind for f in faults if f.landed)
    return [runtime, injected, f"{survived}/{sum(1 for f in faults if f.landed)}", f"{completed}/{EPISODES}", recorded,
            len(answered), len(answered) - recorded, lost, "yes" if all(equal.values()) else "NO", f"{wall:.0f}"]  # fmt: skip


def _replays(answered: list[tuple[float, str]], baseline: Counter[str]) -> list[float]:
    """When each action call answered beyond the undisturbed run's count of it was answered."""
    seen: Counter[str] = Counter()
    extra = []
    for moment, digest in answered:
        seen[digest] += 1
        if seen[digest] > baseline[digest]:
            extra.append(moment)
    return extra


def run_chaos_benchmark(write: bool = True) -> None:
    rows, details = [], []
    with tempfile.TemporaryDirectory(prefix="harness-chaos-") as scratch:
        root = Path(scratch)
        reference_model = ModelServerProcess(root / "undisturbed.ledger")
        reference_model.start()
        try:
            reference = _harness(root, reference_model.url, "undisturbed", [], resume=False)
            reference.wait(timeout=RUN_TIMEOUT_S)
        finally:
            reference_model.kill()
        baseline = Counter(digest for _, digest in reference_model.answered())
        plans: list[tuple[str, list[str], tuple[tuple[str, float], ...]]] = [("local", [], LOCAL_FAULTS)]
        cluster = LocalRayCluster(workers=2, cpus_per_worker=2)
        try:
            cluster.start()
            plans.append(("ray (3 nodes)", ["--runtime", "ray", "--ray-address", cluster.address], RAY_FAULTS))
        except ClusterUnavailable as unavailable:
            print(f"no Ray cluster: {unavailable}", file=sys.stderr)
        try:
            for name, runtime, schedule in plans:
                faults = [Fault(kind, share) for kind, share in schedule]
                model = ModelServerProcess(root / f"{name.split()[0]}.ledger")
                model.start()
                try:
                    wall, _ = _run_with_faults(root, model, name.split()[0], runtime, faults,
                                               cluster if runtime else None)  # fmt: skip
                finally:
                    model.kill()
                rows.append(_row(name, root, name.split()[0], root / "runs" / "undisturbed", faults, model.answered(),
                                 baseline, wall))  # fmt: skip
                details += [[name, f.kind, f"{f.at_share:.0%}", len(f.affected), f.detail.strip("; ")] for f in faults if f.landed]
        finally:
            cluster.stop()
    table = tabulate(rows, headers=["runtime", "faults injected", "survived", "episodes completed", "steps recorded",
                                    "steps played", "steps replayed", "steps lost", "records = undisturbed", "wall s"],
                     tablefmt="github")  # fmt: skip
    per_fault = tabulate(details, headers=["runtime", "fault", "at steps", "episodes running", "what it cost"],
                         tablefmt="github")  # fmt: skip
    text = table + "\n\n" + per_fault
    print(text)
    if write:
        note = (f"{EPISODES} Crafter episodes of {STEPS} steps (automem-seed), 4 at a time, against a scripted model that "
                f"answers by content ({LATENCY_S * 1000:.0f} ms a call) in its own process. Steps played: the action calls "
                "the model server answered (one per step), counted by the server. Steps replayed: action calls answered "
                "beyond the undisturbed run's (the steps in flight when a fault landed, played again). Steps lost: steps "
                "of the undisturbed run missing from the final records. A fault is survived when every episode running "
                "when it landed ends with records equal to the undisturbed run's (steps, messages, memory, result; "
                "times and retries aside). The Ray cluster: a head without CPUs and two worker nodes of 2 CPUs, each its "
                "own `ray start`; the node fault kills worker node 0's raylet and every process under it.")  # fmt: skip
        write_section("chaos", "harness bench chaos", text + "\n\n" + note)
