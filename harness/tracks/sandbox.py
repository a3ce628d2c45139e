"""Where the scaffold track runs code a meta-LLM wrote: in containers, unless told otherwise.

A candidate scaffold is code nobody reviewed. Its import check, smoke episode and evaluations
run in the docker runtime (no network, read-only, limits) whenever a Docker-compatible engine
answers. Without one the track refuses, unless the user accepts running the candidates on this
machine (`--allow-unsandboxed`); that choice is recorded in the track and shown on its row.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.runtime import is_sandboxed
from harness.runtime.docker import engine_problem

ENGINE_HINT = "start one (e.g. eval \"$(../shared/tools/container-engine up)\", or a Docker daemon)"


class SandboxRefused(RuntimeError):
    """The track cannot run candidates as asked: no engine, or an unsandboxed runtime not allowed."""


@dataclass(frozen=True)
class CandidateRuntime:
    runtime: str  # the runtime every evaluation of the track uses
    isolation: str  # how candidates ran, as recorded and published

    @property
    def sandboxed(self) -> bool:
        return is_sandboxed(self.runtime)


def candidate_runtime(requested: str | None, allow_unsandboxed: bool) -> CandidateRuntime:
    """The runtime for a track's candidates: docker when an engine answers (`requested` None or
    "docker"); local or ray only with `allow_unsandboxed`."""
    if requested in (None, "docker"):
        problem = engine_problem()
        if problem is None:
            return CandidateRuntime("docker", "docker (sandboxed)")
        if requested == "docker" or not allow_unsandboxed:
            raise SandboxRefused(
                f"no Docker-compatible engine answers ({problem}), and the candidates a meta-LLM writes "
                f"would run on this machine with your rights: {ENGINE_HINT}"
                + ("" if requested == "docker" else ", or pass --allow-unsandboxed to accept the risk"))  # fmt: skip
        return CandidateRuntime("local", "local, unsandboxed (--allow-unsandboxed; no engine answered)")
    if not allow_unsandboxed:
        raise SandboxRefused(f"--runtime {requested} runs the candidates a meta-LLM writes unsandboxed, with your "
                             "rights: use the docker runtime (the default when an engine answers), or pass "
                             "--allow-unsandboxed to accept the risk")  # fmt: skip
    return CandidateRuntime(requested, f"{requested}, unsandboxed (--allow-unsandboxed)")
