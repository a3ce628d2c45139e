"""Fixed-slot AUTOMEM baseline: LOG then PLAN (recall, act) each step, with file memory; the
code decides the memory operations (one append, one search), the model fills their text.

All three calls of a step share one conversation (instructions, then the step's
observation), so a server with prefix caching reads the observation once per step.
"""

from __future__ import annotations

import re

from harness.agent import Scaffold, Step, Task

LOG_FILE = "log.md"


class Agent(Scaffold):
    def reset(self, task: Task) -> None:
        self.task = task
        self.system = {"role": "system", "content": task.instructions}

    def step(self, step: Step) -> str:
        situation = f"Step {step.index}."
        if step.last_action is not None:
            situation += f" Your last action: {step.last_action} (reward {step.last_reward:g})."
        if step.feedback:
            situation += f" Note: {step.feedback}"
        conversation = [self.system, {"role": "user", "content": f"{situation}\nObservation:\n{step.observation}"}]

        # LOG: decide what is worth recording about the game's answer to the last action.
        conversation.append({"role": "user", "content":
                             "LOG: in one short line, what should you remember from this observation? "
                             "Answer NONE if nothing is new."})  # fmt: skip
        note = self.chat(conversation, routine="log", max_tokens=40).strip().splitlines()
        note_text = note[0].strip() if note else ""
        if note_text and note_text.upper() != "NONE":
            self.memory.append(LOG_FILE, f"step {step.index}: {note_text}\n")
        conversation.append({"role": "assistant", "content": note_text or "NONE"})

        # PLAN, part 1: decide what to recall, and search the notes for it.
        conversation.append({"role": "user", "content": "RECALL: one keyword to search your notes for."})
        keyword = self.chat(conversation, routine="recall", max_tokens=8).strip()
        keyword = re.sub(r"[^\w -]", "", keyword).strip()[:40]
        conversation.append({"role": "assistant", "content": keyword or "none"})
        hits = self.memory.search(keyword)[-5:] if keyword and self.memory.list() else []
        recalled = "\n".join(hits) if hits else "(nothing found)"

        # PLAN, part 2: commit the next world action.
        conversation.append({"role": "user", "content":
                             f"Your notes matching '{keyword}':\n{recalled}\n"
                             "ACT: answer with the name of your next action."})  # fmt: skip
        return self.chat(conversation, routine="act", choices=list(step.actions), max_tokens=12)
