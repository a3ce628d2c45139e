"""What one episode job is: its spec (env, task, seed, caps, folder), and failure kinds."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.runs.records import EpisodeRecord

# Failures of the submission itself: the episode ends and is scored at what it reached.
#   scaffold: its code raised, timed out, or hung; request: the model server refused a request
#   it built (HTTP 400/413/422, e.g. a prompt over the context length).
SUBMISSION_ERRORS = ("scaffold", "request")
# Failures that are not the submission's: not scored, counted apart, retried by --resume.
#   model: the model server did not answer after retries (or refused us as a client);
#   env: the game crashed or hung; worker: the worker process died; episode_timeout: the
#   episode passed its wall-clock cap.
INFRASTRUCTURE_ERRORS = ("model", "env", "worker", "episode_timeout")


@dataclass
class EpisodeSpec:
    env: str
    task: str
    seed: int
    max_steps: int
    episode_dir: str
    step_timeout_s: float = 600.0  # the scaffold's own time per call (reset or step)
    env_address: str | None = None  # play through an env server instead of in-process
    memory_limits: dict[str, int] = field(default_factory=dict)
    env_timeout_s: float = 300.0  # one game call, enforced from outside
    episode_timeout_s: float = 0.0  # the episode's wall clock, enforced from outside (0: none)
    max_episode_bytes: int = 2**30  # the episode folder's size, enforced from outside (0: none)
    observation: str = "balrog"  # the text variants the model reads (the suite's)
    instructions: str = "balrog"
    answers: str = "forgiving"  # how an answer names an action (agent.episode.resolve_action)

    @property
    def key(self) -> str:
        return f"{self.env}/{self.task}/{self.seed}"


def default_episode_timeout_s(max_steps: int) -> float:
    """The wall-clock cap of an episode when none is given: an hour, or 30 s per step."""
    return max(3600.0, 30.0 * max_steps)


def is_scored(episode: EpisodeRecord) -> bool:
    """Whether an episode counts in scores (an infrastructure failure does not)."""
    return episode.status != "errored" or episode.error_kind not in INFRASTRUCTURE_ERRORS
