"""A uniform random policy over the task's actions, without any model call.

Each step's action is drawn from a generator seeded by the episode (game, task, seed) and the
step's index: reproducible from the records alone, and nothing to carry between steps (a
resumed episode draws what it would have drawn).
"""

import hashlib
import random

from harness.agent import Scaffold, Step, Task


class Agent(Scaffold):
    def reset(self, task: Task) -> None:
        self.episode = f"{task.env}/{task.name}/{task.seed}"

    def step(self, step: Step) -> str:
        seed = int.from_bytes(hashlib.sha256(f"{self.episode}/{step.index}".encode()).digest()[:8], "big")
        return random.Random(seed).choice(step.actions)

    def state(self) -> dict[str, str]:
        return {}  # every draw is made from the episode and the step index

    def load_state(self, state: object) -> None:
        pass
