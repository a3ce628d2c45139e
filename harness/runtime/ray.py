"""The Ray runtime: scale out over an existing Ray cluster (`--runtime ray --ray-address ADDR`).

Each episode is one Ray task running the same worker code (`python -m harness.agent.worker`)
in a scratch folder on whichever node Ray picks. The task is a Ray *streaming generator*: every
`STREAM_INTERVAL_S` it yields what changed in the episode folder (runtime.stream) and the
worker's progress events, and the driver writes them into the run directory as they arrive.
So the run directory is the one source of truth while the episode runs, as with local workers:
the progress display, the watchdog (it reads the streamed phase) and a resume see every step
within a second of its being written.

Why a streaming generator and not an actor, a queue or a shared store: the yielded pieces are
small objects owned by the driver (Ray keeps them in the driver's own memory store), so they do
not die with the node that made them; ordering and back-pressure are Ray's; and nothing has to
be set up or named beyond the cluster itself (an fsspec store would need credentials on every
node, an actor a place to live and its own failure handling).

A task is never retried by Ray (max_retries=0): Ray would start it again from its launch-time
arguments, playing the streamed steps twice. When a task dies with its node, the driver sees
the stream fail, the scheduler records the loss (launches.jsonl) and launches the episode
again; the new task gets the folder as the run directory holds it and continues from its last
streamed step (agent.resume). Nodes need the harness installed (same version) and must reach
the model endpoint: give a model URL they can reach.
"""

from __future__ import annotations

import io
import json
import os
import queue
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.envs.snapshot import EVERY_VARIABLE
from harness.runs.layout import atomic_write_text
from harness.runs.watchdog import Overdue, folder_bytes, oversized_verdict
from harness.runtime.stream import NOT_STREAMED, FolderTracker, StreamRefused, apply_changes

STREAM_INTERVAL_S = 0.5  # how often a task sends what changed: at most this much of an episode is in flight
KEPT_BACK = NOT_STREAMED  # the run's own files do not travel to the task


def _pack(folder: Path) -> bytes:
    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        name = info.name.removeprefix("./")
        return None if "__pycache__" in info.name or name in KEPT_BACK else info

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(str(folder), arcname=".", filter=keep)
    return buffer.getvalue()


def _unpack(data: bytes, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        archive.extractall(target, filter="data")


def _placement() -> dict[str, Any]:
    import ray

    return {"node": ray.get_runtime_context().get_node_id(), "address": ray.util.get_node_ip_address(),  # type: ignore[no-untyped-call]
            "host": socket.gethostname(), "pid": os.getpid()}  # fmt: skip


def stream_episode(job: dict[str, Any], submission_archive: bytes, earlier: bytes | None,
                   max_bytes: int) -> Iterator[dict[str, Any]]:  # fmt: skip
    """The Ray task body: run the worker on this node and yield, as they happen, the changes of
    its episode folder and its progress events; the last piece carries its exit code.
    `earlier`: the episode folder as the run directory holds it (the worker continues from it)."""
    yield {"placement": _placement()}
    with tempfile.TemporaryDirectory(prefix="harness-ray-") as scratch:
        root = Path(scratch)
        _unpack(submission_archive, root / "submission")
        episode_dir = root / "episode"
        episode_dir.mkdir()
        if earlier:
            _unpack(earlier, episode_dir)
        tracker = FolderTracker(episode_dir, already_sent=True)
        local_job = {**job, "submission": str(root / "submission"),
                     "episode": {**job["episode"], "episode_dir": str(episode_dir)}}  # fmt: skip
        (episode_dir / "job.json").write_text(json.dumps(local_job))
        # no snapshots of the game (envs.snapshot): a relaunch may land on another node, and a holder
        # here would live as long as this node's Ray worker process, serving nobody
        environment = {**os.environ, EVERY_VARIABLE: "0"}
        with open(episode_dir / "worker.log", "w") as log:  # streamed like any record
            worker = subprocess.Popen([sys.executable, "-m", "harness.agent.worker", str(episode_dir / "job.json")],
                                      stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True,
                                      env=environment)  # fmt: skip
        events: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=_read_events, args=(worker, events), daemon=True)
        reader.start()
        while True:
            try:
                worker.wait(timeout=STREAM_INTERVAL_S)
            except subprocess.TimeoutExpired:
                pass
            finished = worker.returncode is not None
            if not finished and max_bytes > 0 and folder_bytes(episode_dir, max_bytes) > max_bytes:
                _end_group(worker)  # its records up to here are sent; the driver says whose fault
                yield {"changes": [], "events": [], "oversized": max_bytes, "returncode": worker.wait()}
                return
            if finished:
                reader.join(timeout=5)
            lines = _drain(events)
            changes = tracker.changes()
            if changes or lines or finished:
                yield {"changes": changes, "events": lines, **({"returncode": worker.returncode} if finished else {})}
            if finished:
                return


def _read_events(worker: subprocess.Popen[str], events: queue.Queue[str]) -> None:
    for line in worker.stdout or ():
        events.put(line)


def _drain(events: queue.Queue[str]) -> list[str]:
    lines = []
    while True:
        try:
            lines.append(events.get_nowait())
        except queue.Empty:
            return lines


def _end_group(worker: subprocess.Popen[str]) -> None:
    try:
        os.killpg(worker.pid, 9)  # the worker and its game (its own session)
    except OSError:
        pass


class RayProcess:
    """A Ray task seen by the scheduler like a child process: its stdout yields the worker's
    events as the stream brings them, after writing the folder changes that came with them."""

    def __init__(self, generator: Any, directory: Path, log_path: Path) -> None:
        self.generator, self.directory, self.log_path = generator, directory, log_path
        self.returncode: int | None = None
        self.placement: dict[str, Any] = {}
        self.verdict: Overdue | None = None  # the stream's own verdict (an episode folder past its limit)
        self._ended = threading.Event()
        self._started = False
        self._cancelled = False
        self.stdout = self._lines()

    def _lines(self) -> Iterator[str]:
        import ray

        self._started = True
        try:
            for reference in self.generator:
                piece = ray.get(reference)
                if "placement" in piece:
                    self.placement = piece["placement"]
                    continue
                apply_changes(self.directory, piece["changes"])
                yield from piece["events"]
                if "oversized" in piece:
                    self.verdict = oversized_verdict(int(piece["oversized"]))
                if "returncode" in piece:
                    self.returncode = int(piece["returncode"])
        except StreamRefused as refused:  # the worker's folder held what cannot be written here
            self.kill()
            self._note(f"the episode's stream was refused: {refused}")
            self.returncode = 1
        except Exception as error:  # the task died (its node, its worker process) or was cancelled
            lost = "cancelled" if self._cancelled else "lost"
            where = f" on node {self.placement.get('node', '?')} ({self.placement.get('address', '?')})"
            self._note(f"the Ray task was {lost}{where}: {type(error).__name__}: {error}")
            self.returncode = 1
        finally:
            if self.returncode is None:
                self.returncode = 1
            self._ended.set()

    def _note(self, line: str) -> None:
        """Add the driver's word to the episode's worker log (a new file: never a link)."""
        log = self.directory / "worker.log"
        earlier = log.read_text(errors="replace") if log.is_file() and not log.is_symlink() else ""
        atomic_write_text(log, earlier + ("" if earlier.endswith("\n") or not earlier else "\n") + line + "\n")

    def wait(self, timeout: float | None = None) -> int:
        if not self._started:
            for _ in self.stdout:
                pass
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired("ray task", timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def terminate(self) -> None:
        import ray

        self._cancelled = True
        try:
            ray.cancel(self.generator, force=True)
        except Exception:
            pass  # already ended

    kill = terminate


class RayRuntime:
    name = "ray"

    def __init__(self, address: str | None) -> None:
        import ray

        if not address:
            raise ValueError("the ray runtime needs --ray-address (e.g. 10.0.0.5:6379, or 'auto' on a cluster node)")
        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False)
        self._task = ray.remote(num_cpus=1, max_retries=0)(stream_episode)

    def launch(self, job_path: Path, log_path: Path) -> RayProcess:
        job = json.loads(job_path.read_text())
        folder = job_path.parent
        # the steps streamed so far travel with the task, so that it continues from them
        earlier = _pack(folder) if (folder / "steps.jsonl").exists() else None
        generator = self._task.remote(job, _pack(Path(job["submission"])), earlier,
                                      int(job["episode"].get("max_episode_bytes", 0)))  # fmt: skip
        return RayProcess(generator, folder, log_path)

    def close(self) -> None:
        import ray

        ray.shutdown()
