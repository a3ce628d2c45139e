"""BALROG's naive agent, rebuilt from its rules: the reference point of BALROG's leaderboard.

- The instructions go first, as a user message (BALROG sends them with the user role).
- Then the last 16 observations and 16 actions as alternating user and assistant messages.
  Earlier observations carry only their long-lived part; the current one starts with the
  short-lived part (the NetHack/MiniHack inventory, Crafter's vitals and inventory) and ends
  with a reminder to answer with one action.
- The answer is free text (no `choices`), up to 4096 tokens. Trimmed, it must be an action
  name exactly; otherwise the task's default action is played and the answer counts as
  invalid (the harness's rule, which also accepts another letter case where BALROG would
  not). No memory files.
"""

from __future__ import annotations

from collections import deque

from harness.agent import Scaffold, Step, Task

HISTORY = 16  # observations kept, and as many actions
MAX_TOKENS = 4096
# Where the short-lived part of each env's standard text begins.
SHORT_LIVED = {"nethack": "\n\nInventory:\n", "minihack": "\n\nInventory:\n", "crafter": "\nVitals:\n"}
REMINDER = ("Answer with one of the actions listed above and nothing else; every turn needs "
            "an action until the episode ends.\nAction:")  # fmt: skip


def split_observation(env: str, text: str) -> tuple[str, str]:
    """(long-lived part, short-lived part) of an observation."""
    marker = SHORT_LIVED.get(env)
    if marker is None or marker not in text:
        return text, ""
    long_lived, _, short_lived = text.partition(marker)
    return long_lived, marker.strip("\n") + "\n" + short_lived


class Agent(Scaffold):
    def reset(self, task: Task) -> None:
        self.env = task.env
        self.instructions = {"role": "user", "content": task.instructions}
        self.events: deque[dict[str, str]] = deque(maxlen=2 * HISTORY)

    def step(self, step: Step) -> str:
        if step.last_action is not None:
            self.events.append({"role": "assistant", "content": step.last_action})
        long_lived, short_lived = split_observation(self.env, step.observation)
        self.events.append({"role": "user", "content": long_lived, "short": short_lived})
        messages = [self.instructions]
        for index, event in enumerate(self.events):
            if event["role"] == "assistant":
                messages.append({"role": "assistant", "content": event["content"]})
            elif index == len(self.events) - 1:
                current = f"Current observation:\n{event['short']}\n{event['content']}\n\n{REMINDER}"
                messages.append({"role": "user", "content": current})
            else:
                messages.append({"role": "user", "content": f"Observation:\n{event['content']}"})
        return self.chat(messages, routine="act", max_tokens=MAX_TOKENS).strip()
