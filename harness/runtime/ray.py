"""The Ray runtime: scale out over an existing Ray cluster (`--runtime ray --ray-address ADDR`).

Each episode is one Ray task running the same worker code (`python -m harness.agent.worker`)
in a scratch folder on whichever node Ray picks. The submission travels with the task (and an
earlier attempt's episode folder, which the worker continues); the episode folder comes back
as an archive when the task ends and is unpacked into the run directory, so the run stays
the one source of truth and resumes like any other (a driver killed mid-episode continues
from the steps it holds: those of tasks that ended). Nodes need the harness installed
(same version) and must reach the model endpoint: give a model URL they can reach.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _pack(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(str(folder), arcname=".", filter=lambda info: None if "__pycache__" in info.name else info)
    return buffer.getvalue()


def _unpack(data: bytes, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        archive.extractall(target, filter="data")


def run_episode_task(job: dict[str, Any], submission_archive: bytes, earlier: bytes | None = None) -> dict[str, Any]:
    """The Ray task body: run the worker on this node; return its output and the episode folder.
    `earlier`: the episode folder as the driver holds it, when an earlier attempt recorded steps
    (the worker continues from them, agent.resume)."""
    with tempfile.TemporaryDirectory(prefix="harness-ray-") as scratch:
        root = Path(scratch)
        _unpack(submission_archive, root / "submission")
        episode_dir = root / "episode"
        episode_dir.mkdir()
        if earlier:
            _unpack(earlier, episode_dir)
        local_job = {**job, "submission": str(root / "submission"),
                     "episode": {**job["episode"], "episode_dir": str(episode_dir)}}  # fmt: skip
        (episode_dir / "job.json").write_text(json.dumps(local_job))
        completed = subprocess.run([sys.executable, "-m", "harness.agent.worker", str(episode_dir / "job.json")],
                                   capture_output=True, text=True)  # fmt: skip
        (episode_dir / "job.json").unlink()
        return {"returncode": completed.returncode, "stdout": completed.stdout, "stderr": completed.stderr,
                "episode": _pack(episode_dir)}  # fmt: skip


class RayProcess:
    """A Ray task seen by the scheduler like a child process (events arrive when it ends)."""

    def __init__(self, reference: Any, directory: Path, log_path: Path) -> None:
        self.reference, self.directory, self.log_path = reference, directory, log_path
        self.returncode: int | None = None
        self._result: dict[str, Any] | None = None
        self.stdout = self._lines()

    def _fetch(self) -> dict[str, Any]:
        import ray

        if self._result is None:
            try:
                self._result = ray.get(self.reference)
            except Exception as error:  # the task failed or was cancelled: a worker failure
                self._result = {"returncode": 1, "stdout": "", "stderr": f"ray task failed: {error}", "episode": None}
            if self._result["episode"]:
                _unpack(self._result["episode"], self.directory)
            self.log_path.write_text(self._result["stderr"])
            self.returncode = int(self._result["returncode"])
        return self._result

    def _lines(self) -> Iterator[str]:
        yield from self._fetch()["stdout"].splitlines(keepends=True)

    def wait(self, timeout: float | None = None) -> int:
        self._fetch()
        assert self.returncode is not None
        return self.returncode

    def terminate(self) -> None:
        import ray

        ray.cancel(self.reference, force=True)

    kill = terminate


class RayRuntime:
    name = "ray"

    def __init__(self, address: str | None) -> None:
        import ray

        if not address:
            raise ValueError("the ray runtime needs --ray-address (e.g. 10.0.0.5:6379, or 'auto' on a cluster node)")
        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False)
        self._task = ray.remote(num_cpus=1)(run_episode_task)

    def launch(self, job_path: Path, log_path: Path) -> RayProcess:
        job = json.loads(job_path.read_text())
        folder = job_path.parent
        # an earlier attempt's steps travel with the task, so that it continues from them
        earlier = _pack(folder) if (folder / "steps.jsonl").exists() else None
        reference = self._task.remote(job, _pack(Path(job["submission"])), earlier)
        return RayProcess(reference, job_path.parent, log_path)

    def close(self) -> None:
        import ray

        ray.shutdown()
