"""What one episode job is: its spec (env, task, seed, caps, folder), and failure kinds."""

from __future__ import annotations

from dataclasses import dataclass, field

# Failures that are not the submission's: not scored, retried by --resume.
INFRASTRUCTURE_ERRORS = ("model", "env", "worker")


@dataclass
class EpisodeSpec:
    env: str
    task: str
    seed: int
    max_steps: int
    episode_dir: str
    step_timeout_s: float = 600.0
    env_address: str | None = None  # play through an env server instead of in-process
    memory_limits: dict[str, int] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.env}/{self.task}/{self.seed}"


def is_scored(episode: dict[str, object]) -> bool:
    """Whether an episode.json counts in scores (an infrastructure failure does not)."""
    return episode.get("status") != "errored" or episode.get("error_kind") not in INFRASTRUCTURE_ERRORS
