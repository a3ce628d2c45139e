"""Where episode workers run: `local` child processes (default), `docker` containers, or
tasks on a `ray` cluster. A runtime launches one worker per episode (see runs.scheduler)."""

from __future__ import annotations

from typing import Any

RUNTIMES = ("local", "docker", "ray")
SANDBOXED_RUNTIMES = ("docker",)  # the runtimes whose scaffolds run in a sandbox


def is_sandboxed(runtime: str) -> bool:
    return runtime in SANDBOXED_RUNTIMES


def get_runtime(name: str, **options: Any) -> Any:
    """The runtime called `name` (a CLI string resolves to code here)."""
    if name == "local":
        from harness.runtime.local import LocalRuntime

        return LocalRuntime(options.get("worker_start", "fork"))
    if name == "docker":
        from harness.runtime.docker import DockerRuntime

        return DockerRuntime(options["run_id"])
    if name == "ray":
        from harness.runtime.ray import RayRuntime

        return RayRuntime(options.get("ray_address"))
    raise ValueError(f"unknown runtime {name!r}; runtimes: {', '.join(RUNTIMES)}")
