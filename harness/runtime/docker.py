"""The docker runtime: every episode in containers, with the scaffold sandboxed.

Per episode, an env container serves the game and an agent container runs the worker with
the scaffold. Neither has any network: they talk over a Unix socket in a folder both mount,
and the agent reaches its model only through the run's relay (runtime/relay.py: a container on
the host's network that opens sockets in each episode's own folder, forwards their requests
to the model endpoints and nowhere else, adds a hosted server's key on the way out, and
enforces size limits and timeouts). The agent sees
the submission read-only and the episode folder as its only writable mount (read-only root
filesystem, /tmp in memory), with memory, CPU and process limits and no capabilities.
Everything started carries the label `harness.run_id` and is removed at the end of the run,
on Ctrl-C and on errors; leftovers of a killed run are swept when the run resumes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.envs.gamelog import GAME_LOG_FILE
from harness.runs.layout import atomic_write_bytes, atomic_write_json
from harness.runtime.images import ENV_IMAGE, ensure_image
from harness.runtime.relay import KEY_VARIABLE, RelayControl

LABEL = "harness.run_id"
MAX_LOG_BYTES = 1024 * 1024  # a worker.log keeps the last MiB of the container's stderr


def _tail(data: bytes) -> bytes:
    return data if len(data) <= MAX_LOG_BYTES else b"[... earlier output cut ...]\n" + data[-MAX_LOG_BYTES:]


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

    def __init__(self, agent: Any, env: Any, sockets: Path, log_path: Path, on_exit: Callable[[], None] = lambda: None,
                 episode_dir: Path | None = None) -> None:  # fmt: skip
        self.agent, self.env, self.sockets, self.log_path, self.on_exit = agent, env, sockets, log_path, on_exit
        self.episode_dir = episode_dir
        self.returncode: int | None = None
        self.stdout = self._lines()
        # where it ran, for launches.jsonl: the agent and env containers on this host
        self.placement = {"host": socket.gethostname(), "agent": getattr(agent, "name", None), "env": getattr(env, "name", None)}

    def _lines(self) -> Iterator[str]:
        buffer = b""
        for chunk in self.agent.logs(stream=True, follow=True, stdout=True, stderr=False):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                yield line.decode(errors="replace") + "\n"
            if len(buffer) > MAX_LOG_BYTES:  # a line with no end (scaffold code printing): not an event
                buffer = b""
        if buffer:
            yield buffer.decode(errors="replace")

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = int(self.agent.wait(timeout=timeout)["StatusCode"])
            # host files are replaced by rename: a link the container left is never followed
            atomic_write_bytes(self.log_path, _tail(self.agent.logs(stdout=False, stderr=True)))
            try:
                self.env.wait(timeout=10)  # its session ended with the agent: its log is whole
            except Exception:
                pass
            game_log = self.sockets / "game" / GAME_LOG_FILE
            if self.episode_dir is not None and game_log.is_file() and not game_log.is_symlink():
                atomic_write_bytes(self.episode_dir / GAME_LOG_FILE, game_log.read_bytes())
            for container in (self.agent, self.env):
                try:
                    container.remove(force=True)
                except Exception:
                    pass
            self.on_exit()
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


def sandbox_settings(limits: SandboxLimits, labels: dict[str, str]) -> dict[str, Any]:
    """A sandboxed container: no network, no capabilities, read-only root, memory/CPU/process limits."""
    return {"network_mode": "none", "labels": labels, "user": f"{os.getuid()}:{os.getgid()}",
            "mem_limit": limits.memory, "nano_cpus": int(limits.cpus * 1e9),
            "pids_limit": limits.pids, "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
            "read_only": True, "tmpfs": {"/tmp": "size=64m"}, "detach": True}  # fmt: skip


def engine_problem() -> str | None:
    """None when a Docker-compatible engine answers (DOCKER_HOST or the default socket), else why not."""
    try:
        import docker

        docker.from_env(timeout=10).ping()
    except Exception as error:  # no SDK, no socket, a dead daemon: all mean "no sandbox here"
        return f"{type(error).__name__}: {error}"
    return None


def check_in_container(directory: Path, timeout_s: float = 120.0, limits: SandboxLimits | None = None) -> tuple[str, str]:
    """Import a submission's scaffold in an agent container (no network, read-only, limited):
    the import check of code nobody reviewed. Returns the check's (stdout, stderr)."""
    import docker

    client = docker.from_env()
    label = f"check-{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}"
    container = client.containers.run(
        ensure_image(client, "agent")[0], ["-m", "harness.agent.submission", "check", "/submission"], entrypoint="python",
        volumes={str(Path(directory).resolve()): {"bind": "/submission", "mode": "ro"}}, environment={"HOME": "/tmp"},
        **sandbox_settings(limits or SandboxLimits(), {LABEL: label}),
    )  # fmt: skip
    try:
        try:
            container.wait(timeout=timeout_s)
        except Exception:
            return "", f"the import check did not finish in {timeout_s:g} s"
        return container.logs(stdout=True, stderr=False).decode(errors="replace"), \
            container.logs(stdout=False, stderr=True).decode(errors="replace")  # fmt: skip
    finally:
        try:
            container.remove(force=True)
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
        self._routes: dict[str, str] = {}  # model URL -> the relay's route name
        self._control: Any = None  # RelayControl, once the relay runs
        self._counter = 0
        self.build_seconds = 0.0
        self.sweep()  # a run killed before could have left containers behind

    def _labels(self) -> dict[str, str]:
        return {LABEL: self.run_id}

    @property
    def isolation(self) -> dict[str, Any]:
        """The sandbox every scaffold of the run ran in, for run.json."""
        return {"network": "none (the model through the run's relay only)", "root_filesystem": "read-only",
                "submission": "read-only", "capabilities": "none", "memory": self.limits.memory,
                "cpus": self.limits.cpus, "pids": self.limits.pids}  # fmt: skip

    def sweep(self, attempts: int = 5) -> None:
        """Remove every container this run started, and its socket folders. A container caught
        while it exits on its own (a killed run's game ends with its agent) can refuse removal
        for a moment: the sweep tries again until none is left."""
        for attempt in range(attempts):
            left = self.client.containers.list(all=True, filters={"label": f"{LABEL}={self.run_id}"})
            for container in left:
                try:
                    container.remove(force=True)
                except Exception:
                    pass
            if not left:
                break
            time.sleep(0.2 * (attempt + 1))
        self._relay = None
        shutil.rmtree(self.sockets, ignore_errors=True)

    def _run(self, image: str, command: list[str], name: str, **settings: Any) -> Any:
        """containers.run under a name of this run; a container an earlier session of the run
        left under that name (its sweep raced with the container's own exit) is removed first."""
        try:
            self.client.containers.get(name).remove(force=True)
        except Exception:
            pass  # none there (the usual case), or gone already
        return self.client.containers.run(image, command, name=name, **settings)

    def close(self) -> None:
        self.sweep()

    def _image(self, name: str) -> str:
        tag, seconds = ensure_image(self.client, name)
        self.build_seconds += seconds
        return tag

    def _sandbox(self) -> dict[str, Any]:
        return sandbox_settings(self.limits, self._labels())

    def _relay_for(self, model: dict[str, Any]) -> None:
        """Start the run's relay (once): a route per model endpoint, the base server's key (if
        any) in the relay's own environment, and a control socket only the host reaches."""
        if self._relay is not None:
            return
        from harness.models.keys import api_key, key_is_set

        urls = [u for u in (model["base_url"], model.get("specialist_url")) if u]
        self._routes = {url: str(index) for index, url in enumerate(urls)}
        keys = {KEY_VARIABLE.format(0): api_key(model["api_key_env"])} if key_is_set(model.get("api_key_env")) else {}
        (self.sockets / "control").mkdir(parents=True, exist_ok=True)
        self._relay = self._run(
            self._image("agent"), ["-m", "harness.runtime.relay", "--control", "/sockets/control/relay.sock",
                                   *(f"--route={index}={url}" for url, index in self._routes.items())],
            entrypoint="python", name=f"harness-{self.run_id}-relay", detach=True, network_mode="host",
            labels=self._labels(), user=f"{os.getuid()}:{os.getgid()}", environment=keys,
            read_only=True, mem_limit="256m", pids_limit=64, volumes={str(self.sockets): {"bind": "/sockets", "mode": "rw"}},
        )  # fmt: skip
        _wait_for(self.sockets / "control" / "relay.sock", self._relay)
        self._control = RelayControl(self.sockets / "control" / "relay.sock")

    def launch(self, job_path: Path, log_path: Path) -> ContainerProcess:
        job = json.loads(job_path.read_text())
        episode, model = job["episode"], job["model"]
        with self._lock:
            self._counter += 1
            counter = self._counter
            key = f"harness-{self.run_id}-{counter}"
            self._relay_for(model)
            env_image, agent_image = self._image(ENV_IMAGE[episode["env"]]), self._image("agent")
        # The episode's own sockets: the game's (env/) and its model routes (model/), opened by
        # the relay in this folder only; no other episode's container mounts it.
        sockets = self.sockets / str(counter)
        for part in ("env", "model", "game"):
            (sockets / part).mkdir(parents=True, exist_ok=True)
        # One socket per role, each with the model the harness assigned to it: the relay sets
        # that name on every chat request, so the scaffold's only choice is the routine.
        specialist_url = (model.get("specialist_url") or model["base_url"]) if model.get("adapter") else None
        roles = {"base": (model["base_url"], model.get("model"))}
        if specialist_url:
            roles["specialist"] = (specialist_url, model.get("specialist_model") or model.get("adapter"))
        model_sockets = {role: f"model/{role}.sock" for role in roles}
        for role, (url, name) in roles.items():
            self._control.listen(f"/sockets/{counter}/{model_sockets[role]}", self._routes[url], name)
        # The game keeps its own log in a folder only its container mounts (the agent's cannot
        # reach it); the host copies it into the episode folder once the agent has exited.
        env = self._run(
            env_image, ["--unix", "/sockets/env.sock", "--episode", f"{episode['task']}:{episode['seed']}",
                        "--game-log", "/game/" + GAME_LOG_FILE, "--observation", episode.get("observation", "balrog"),
                        "--instructions", episode.get("instructions", "balrog"), episode["env"]],
            name=f"{key}-env", volumes={str(sockets / "env"): {"bind": "/sockets", "mode": "rw"},
                                        str(sockets / "game"): {"bind": "/game", "mode": "rw"}},
            **self._sandbox())  # fmt: skip
        _wait_for(sockets / "env" / "env.sock", env)
        inside = {**job, "submission": "/submission",
                  "episode": {**episode, "episode_dir": "/episode", "env_address": "unix:/env/env.sock"},
                  "model": {**model, "base_socket": "/" + model_sockets["base"], "api_key_env": None,
                            "specialist_url": specialist_url,
                            "specialist_socket": "/" + model_sockets["specialist"] if specialist_url else None}}  # fmt: skip
        # written by rename, never through a link an earlier container may have left there
        atomic_write_json(job_path.with_name("job.container.json"), inside)
        agent = self._run(
            agent_image, ["/episode/job.container.json"], name=f"{key}-agent", environment={"HOME": "/tmp"},
            volumes={job["submission"]: {"bind": "/submission", "mode": "ro"},
                     episode["episode_dir"]: {"bind": "/episode", "mode": "rw"},
                     str(sockets / "env"): {"bind": "/env", "mode": "rw"},
                     str(sockets / "model"): {"bind": "/model", "mode": "rw"}},
            **self._sandbox(),
        )  # fmt: skip

        def close_routes() -> None:
            for relative in model_sockets.values():
                try:
                    self._control.close(f"/sockets/{counter}/{relative}")
                except (OSError, RuntimeError):
                    pass  # the relay is gone already: the run is ending

        return ContainerProcess(agent, env, sockets, log_path, close_routes, Path(episode["episode_dir"]))
