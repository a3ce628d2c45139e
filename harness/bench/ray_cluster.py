"""A real multi-node Ray cluster on this machine, for the multi-node test and the chaos benchmark.

Each node is its own `ray start` (its own raylet, object store and workers, with its own
resources), so Ray really places tasks on different nodes; the head offers no CPU, so episodes
run only on the worker nodes. `kill_node` ends one worker node as a lost machine would: its
raylet and every process under it (the workers running episodes) with SIGKILL, nothing told.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from harness.models.embedded import free_port

START_TIMEOUT_S = 180


class ClusterUnavailable(Exception):
    """Ray is not installed, or its nodes did not start here (the reason is the message)."""


@dataclass
class LocalRayCluster:
    workers: int = 2
    cpus_per_worker: int = 2
    address: str = ""
    node_ports: list[int] = field(default_factory=list)  # each worker node's raylet port, by index

    def _ray(self) -> str:
        ray = shutil.which("ray", path=str(Path(sys.executable).parent))
        if ray is None:
            raise ClusterUnavailable("ray is not installed (pip install '.[ray]')")
        return ray

    def _start(self, *arguments: str) -> None:
        started = subprocess.run([self._ray(), "start", *arguments, "--disable-usage-stats"],
                                 capture_output=True, text=True, timeout=START_TIMEOUT_S)  # fmt: skip
        if started.returncode != 0:
            self.stop()
            raise ClusterUnavailable(f"ray start {' '.join(arguments)} failed: {started.stderr.strip()[-1500:]}")

    def __enter__(self) -> LocalRayCluster:
        if not self.address:
            self.start()
        return self

    def start(self) -> None:
        """Start the head, then each worker node; raises ClusterUnavailable when one does not start."""
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        self._start("--head", f"--port={port}", "--num-cpus=0", "--include-dashboard=false")
        for index in range(self.workers):
            node_port = free_port()
            self._start(f"--address={self.address}", f"--num-cpus={self.cpus_per_worker}",
                        f"--node-manager-port={node_port}", f"--resources={{\"worker_node_{index}\": 1}}")  # fmt: skip
            self.node_ports.append(node_port)
        self._wait_for_nodes(1 + self.workers)

    def _wait_for_nodes(self, count: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if len(self.raylets()) >= count:
                return
            time.sleep(0.5)
        raise ClusterUnavailable(f"only {len(self.raylets())} of {count} Ray nodes started")

    def raylets(self) -> dict[int, psutil.Process]:
        """The raylet of each node on this machine, by its port."""
        found: dict[int, psutil.Process] = {}
        for process in psutil.process_iter(["name", "cmdline"]):
            command = process.info["cmdline"] or []  # None when it could not be read
            if process.info["name"] == "raylet" or (command and command[0].endswith("/raylet")):
                for argument in command:
                    if argument.startswith("--node_manager_port="):
                        found[int(argument.split("=", 1)[1])] = process
        return found

    def command_lines_on(self, index: int, command_part: str) -> list[list[str]]:
        """The command lines of processes under worker node `index` that have `command_part` in them."""
        raylet = self.raylets().get(self.node_ports[index])
        if raylet is None:
            return []
        try:
            children = raylet.children(recursive=True)
        except psutil.Error:
            return []
        found = []
        for child in children:
            try:
                command = child.cmdline()
            except psutil.Error:
                continue  # ended meanwhile
            if command_part in " ".join(command):
                found.append(command)
        return found

    def node_id(self, index: int) -> str:
        """Ray's id of worker node `index` (this process must be connected to the cluster)."""
        import ray

        port = self.node_ports[index]
        nodes = ray.nodes()  # type: ignore[no-untyped-call]
        return next((str(node["NodeID"]) for node in nodes if node.get("NodeManagerPort") == port), "")

    def kill_node(self, index: int) -> int:
        """SIGKILL worker node `index`: its raylet and every process under it. Returns how many
        processes were killed."""
        raylet = self.raylets().get(self.node_ports[index])
        if raylet is None:
            return 0
        family = [raylet, *raylet.children(recursive=True)]
        for process in family:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(family, timeout=15)
        return len(family)

    def stop(self) -> None:
        subprocess.run([self._ray(), "stop", "--force"], capture_output=True, timeout=120)

    def __exit__(self, *exc: Any) -> None:
        self.stop()
