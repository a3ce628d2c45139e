"""A game that answers instantly with a fixed, realistic-size text: isolates the server's cost.

Run as `python -m harness.bench.instant_env` to serve it like `harness env serve`.
"""

from __future__ import annotations

from harness.envs.base import Observation, StepResult, TaskSpec, check_action

TEXT = ("Message: nothing happens.\n" + "Map:\n" + ("|........@.......|\n" * 12) + "Status: fine\n") * 4


class InstantEnv:
    spec = TaskSpec(env="instant", name="instant", actions=("north", "south", "east", "west"),
                    default_action="north", instructions="Move.")  # fmt: skip

    def __init__(self, env_name: str = "instant", task: str | None = None) -> None:
        self._step = 0

    def reset(self, seed: int) -> Observation:
        self._step = 0
        return Observation(text=TEXT)

    def step(self, action: str) -> StepResult:
        check_action(self.spec, action)
        self._step += 1
        return StepResult(Observation(TEXT), 0.0, False, False, 0.0, {"step": self._step})

    def close(self) -> None:
        pass


if __name__ == "__main__":
    from harness.envs.server import serve

    serve("instant", factory=InstantEnv)
