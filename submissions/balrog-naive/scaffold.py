"""BALROG's naive agent, rebuilt from its rules: the reference point of BALROG's leaderboard.

- The instructions go first, as a user message (BALROG sends them with the user role).
- Then the last 16 observations and 16 answers as alternating user and assistant messages.
  Earlier observations carry their long-lived part after "Observation:"; the current one is
  "Current Observation:", its short-lived part (NetHack/MiniHack inventory, Crafter's status
  and inventory), then its long-lived part, and a reminder to answer with one action.
- The answer is free text (no `choices`), sampled as BALROG samples by default (temperature
  1.0, up to 8,192 tokens). It is trimmed, then everything but letters, whitespace and colons
  is dropped ("east." reads as "east"); what is left must be an action name exactly, letter
  case included. Otherwise the task's default action is played (the harness reads our answer
  with `answers: exact`, so it counts as invalid as BALROG counts it), and the next
  observation starts with BALROG's notice that the answer was not a valid action.
- The history keeps the model's answers as read (not the action played; an answer read as
  nothing is not kept), and the notices.
  No memory files.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

from harness.agent import Scaffold, Step, Task

HISTORY = 16  # observations kept, and as many answers
TEMPERATURE = 1.0  # BALROG's config.yaml defaults
MAX_TOKENS = 8192
REMINDER = ("Answer with one of the actions listed above and nothing else; every turn needs "
            "an action until the episode ends.")  # fmt: skip
_NOT_KEPT = re.compile(r"[^a-zA-Z\s:]")


def read_answer(completion: str) -> str:
    """The answer as BALROG's naive agent reads it: trimmed, then letters, whitespace and colons only."""
    return _NOT_KEPT.sub("", completion.strip())


def invalid_notice(played: str) -> str:
    """What BALROG puts before the next observation after an answer that named no action."""
    return f"\n\nYour previous output did not contain a valid action. Defaulted to action: {played}\n\nObservation:\n"


class Agent(Scaffold):
    def reset(self, task: Task) -> None:
        self.actions, self.default_action = task.actions, task.default_action
        self.instructions = {"role": "user", "content": task.instructions}
        self.events: deque[dict[str, str]] = deque(maxlen=2 * HISTORY)
        self.answer: str | None = None  # the last answer as read, and whether it named an action
        self.answer_valid = True

    def step(self, step: Step) -> str:
        if self.answer:  # as BALROG: an answer read as "" is not kept
            self.events.append({"role": "assistant", "content": self.answer})
        long_lived = step.long_lived
        if not self.answer_valid:
            long_lived = invalid_notice(self.default_action) + long_lived
        self.events.append({"role": "user", "content": long_lived})
        messages: list[dict[str, Any]] = [self.instructions]
        for index, event in enumerate(self.events):
            if event["role"] == "assistant":
                messages.append({"role": "assistant", "content": event["content"]})
                continue
            current = index == len(self.events) - 1
            parts = ["Current Observation:", *([step.short_lived] if step.short_lived else [])] if current else ["Observation:"]
            messages.append({"role": "user", "content": "\n".join([*parts, event["content"]])})
        messages[-1]["content"] += "\n\n" + REMINDER
        completion = self.chat(messages, routine="act", temperature=TEMPERATURE, max_tokens=MAX_TOKENS).strip()
        self.answer = read_answer(completion)
        self.answer_valid = self.answer in self.actions
        # An invalid answer is passed on as read: with `answers: exact` the harness plays the default.
        return self.answer

    def state(self) -> Any:
        return {"events": list(self.events), "answer": self.answer, "answer_valid": self.answer_valid}

    def load_state(self, state: Any) -> None:
        self.events.extend(state["events"])
        self.answer, self.answer_valid = state["answer"], state["answer_valid"]
