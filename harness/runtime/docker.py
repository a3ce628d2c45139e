"""The docker runtime: every episode in containers, with the scaffold sandboxed.

Per episode, an env container serves the game and an agent container runs the worker with
the scaffold. Neither has any network: they talk over a Unix socket in a folder both mount,
and the agent reaches its model only through the run's relay (a container on the host's
network that forwards socket files to the model endpoints and nowhere else). The agent sees
the submission read-only and the episode folder as its only writable mount (read-only root
filesystem, /tmp in memory), with memory, CPU and process limits and no capabilities.
Everything started carries the label `harness.run_id` and is removed at the end of the run,
on Ctrl-C and on errors; leftovers of a killed run are swept when the run resumes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from harness.runtime.images import ENV_IMAGE, ensure_image

LABEL = "harness.run_id"


@dataclass
class SandboxLimits:
    memory: str = "2g"
    cpus: float = 1.0
    pids: int = 128


def _wait_for(path: Path, container: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        container.reload()
        if container.status in ("exited", "dead") or time.monotonic() > deadline:
            raise RuntimeError(f"container {container.name} did not open {path.name}: {container.logs()[-1000:]!r}")
        time.sleep(0.05)


class ContainerProcess:
    """A running agent container, seen by the scheduler like a child process."""

    def __init__(self, agent: Any, env: Any, sockets: Path, log_path: Path) -> None:
        self.agent, self.env, self.sockets, self.log_path = agent, env, sockets, log_path
        self.returncode: int | None = None
        self.stdout = self._lines()

    def _lines(self) -> Iterator[str]:
        buffer = b""
        for chunk in self.agent.logs(stream=True, follow=True, stdout=True, stderr=False):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                yield line.decode(errors="replace") + "\n"
        if buffer:
            yield buffer.decode(errors="replace")

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = int(self.agent.wait(timeout=timeout)["StatusCode"])
            self.log_path.write_bytes(self.agent.logs(stdout=False, stderr=True))
            for container in (self.agent, self.env):
                try:
                    container.remove(force=True)
                except Exception:
                    pass
            shutil.rmtree(self.sockets, ignore_errors=True)
        return self.returncode

    def terminate(self) -> None:
        try:
            self.agent.stop(timeout=5)
        except Exception:
            pass

    def kill(self) -> None:
        try:
            self.agent.kill()
        except Exception:
            pass


class DockerRuntime:
    name = "docker"

    def __init__(self, run_id: str, limits: SandboxLimits | None = None, client: Any = None) -> None:
        import docker

        self.run_id = run_id
        self.limits = limits or SandboxLimits()
        self.client = client or docker.from_env()
        self.client.ping()
        self.sockets = Path(tempfile.gettempdir()) / "harness-sockets" / run_id
        self._lock = threading.Lock()
        self._relay: Any = None
        self._routes: dict[str, str] = {}  # model URL -> socket path inside containers
        self._counter = 0
        self.build_seconds = 0.0
        self.sweep()  # a run killed before could have left containers behind

    def _labels(self) -> dict[str, str]:
        return {LABEL: self.run_id}

    def sweep(self) -> None:
        """Remove every container this run started, and its socket folders."""
        for container in self.client.containers.list(all=True, filters={"label": f"{LABEL}={self.run_id}"}):
            try:
                container.remove(force=True)
            except Exception:
                pass
        self._relay = None
        shutil.rmtree(self.sockets, ignore_errors=True)

    def close(self) -> None:
        self.sweep()

    def _image(self, name: str) -> str:
        tag, seconds = ensure_image(self.client, name)
        self.build_seconds += seconds
        return tag

    def _sandbox(self) -> dict[str, Any]:
        return {"network_mode": "none", "labels": self._labels(), "user": f"{os.getuid()}:{os.getgid()}",
                "mem_limit": self.limits.memory, "nano_cpus": int(self.limits.cpus * 1e9),
                "pids_limit": self.limits.pids, "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
                "read_only": True, "tmpfs": {"/tmp": "size=64m"}, "detach": True}  # fmt: skip

    def _relay_for(self, urls: list[str]) -> None:
        """Start the run's relay: one socket file per model endpoint, in sockets/model/."""
        if self._relay is not None:
            return
        folder = self.sockets / "model"
        folder.mkdir(parents=True, exist_ok=True)
        routes = []
        for index, url in enumerate(urls):
            parsed = urlparse(url)
            self._routes[url] = f"/model/model-{index}.sock"
            routes.append(f"/model/model-{index}.sock={parsed.hostname}:{parsed.port or 80}")
        self._relay = self.client.containers.run(
            self._image("agent"), ["-m", "harness.runtime.relay", *routes], entrypoint="python",
            name=f"harness-{self.run_id}-relay", detach=True, network_mode="host", labels=self._labels(),
            user=f"{os.getuid()}:{os.getgid()}",
            read_only=True, mem_limit="256m", pids_limit=64, volumes={str(folder): {"bind": "/model", "mode": "rw"}},
        )  # fmt: skip
        for index in range(len(urls)):
            _wait_for(folder / f"model-{index}.sock", self._relay)

    def launch(self, job_path: Path, log_path: Path) -> ContainerProcess:
        job = json.loads(job_path.read_text())
        episode, model = job["episode"], job["model"]
        with self._lock:
            self._counter += 1
            key = f"harness-{self.run_id}-{self._counter}"
            self._relay_for([u for u in (model["base_url"], model.get("specialist_url")) if u])
            env_image, agent_image = self._image(ENV_IMAGE[episode["env"]]), self._image("agent")
        sockets = self.sockets / str(self._counter)
        sockets.mkdir(parents=True, exist_ok=True)
        env = self.client.containers.run(env_image, ["--unix", "/sockets/env.sock", episode["env"]], name=f"{key}-env",
                                         volumes={str(sockets): {"bind": "/sockets", "mode": "rw"}}, **self._sandbox())  # fmt: skip
        _wait_for(sockets / "env.sock", env)
        inside = {**job, "submission": "/submission",
                  "episode": {**episode, "episode_dir": "/episode", "env_address": "unix:/env/env.sock"},
                  "model": {**model, "base_socket": self._routes[model["base_url"]],
                            "specialist_socket": self._routes.get(model.get("specialist_url") or "")}}  # fmt: skip
        container_job = job_path.with_name("job.container.json")
        container_job.write_text(json.dumps(inside, indent=2))
        agent = self.client.containers.run(
            agent_image, ["/episode/job.container.json"], name=f"{key}-agent", environment={"HOME": "/tmp"},
            volumes={job["submission"]: {"bind": "/submission", "mode": "ro"},
                     episode["episode_dir"]: {"bind": "/episode", "mode": "rw"},
                     str(sockets): {"bind": "/env", "mode": "rw"},
                     str(self.sockets / "model"): {"bind": "/model", "mode": "rw"}},
            **self._sandbox(),
        )  # fmt: skip
        return ContainerProcess(agent, env, sockets, log_path)
