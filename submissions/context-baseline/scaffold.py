"""Context baseline: recent history in the prompt, no memory files, one call per step.

Not BALROG's naive agent (that is `submissions/balrog-naive`): this one keeps 3 steps, cuts
older observations to 400 characters and constrains the answer to the action names.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from harness.agent import Scaffold, Step, Task

HISTORY_STEPS = 3  # earlier (observation, action) pairs kept in the prompt
OLD_OBSERVATION_CHARS = 400  # older observations are shortened to this


class Agent(Scaffold):
    def reset(self, task: Task) -> None:
        self.system = {"role": "system", "content": task.instructions}
        self.history: deque[tuple[str, str]] = deque(maxlen=HISTORY_STEPS)
        self.previous_observation: str | None = None

    def state(self) -> dict[str, Any]:
        """The recent history (bounded), so that a killed episode continues where it was."""
        return {"history": [list(pair) for pair in self.history], "previous_observation": self.previous_observation}

    def load_state(self, state: Any) -> None:
        self.history.extend((observation, action) for observation, action in state["history"])
        self.previous_observation = state["previous_observation"]

    def step(self, step: Step) -> str:
        if self.previous_observation is not None and step.last_action is not None:
            self.history.append((self.previous_observation[:OLD_OBSERVATION_CHARS], step.last_action))
        messages = [self.system]
        for observation, action in self.history:
            messages.append({"role": "user", "content": f"Observation:\n{observation}"})
            messages.append({"role": "assistant", "content": action})
        prompt = f"Observation:\n{step.observation}"
        if step.feedback:
            prompt += f"\nNote: {step.feedback}"
        messages.append({"role": "user", "content": prompt + "\nAnswer with the name of your next action."})
        self.previous_observation = step.observation
        return self.chat(messages, routine="act", choices=list(step.actions), max_tokens=12)
