"""AUTOMEM seed scaffold: LOG, then PLAN (recall, act), with memory operations as tool calls.

Each step is one conversation, built append-only so a server's prefix cache is reused within
the step: the instructions, the observation with the list of memory files, then
- LOG: the model may record what the observation taught it (append, create, rewrite);
- RECALL: the model may look things up (search, read) before it decides;
- ACT: the model names the world action (constrained to the action names).
The model decides which memory operation to make, if any; the code only carries it out, at
most MAX_OPS per routine (one tool call per answer, text bounded by MAX_TEXT: short answers
keep a small model fast). Every call offers the same tools (ACT with tool_choice="none"), so
the conversation's start, tools included, stays the same from one call to the next.
"""

from __future__ import annotations

from typing import Any

from harness.agent import Reply, Scaffold, Step, Task

MAX_OPS = 1  # memory operations carried out per routine
MAX_TEXT = 160  # characters one operation writes or searches for
TOOLS = ("append", "create", "rewrite", "search", "read")


class Agent(Scaffold):
    def reset(self, task: Task) -> None:
        self.system = {"role": "system", "content": task.instructions}
        self.tools = self.memory.tools(*TOOLS, max_text_chars=MAX_TEXT)

    def state(self) -> dict[str, Any]:
        """Nothing is kept between steps beyond the memory files (reset rebuilds the rest), so
        a killed episode continues from its last recorded step."""
        return {}

    def load_state(self, state: Any) -> None:
        pass

    def step(self, step: Step) -> str:
        situation = f"Step {step.index}."
        if step.last_action is not None:
            situation += f" Your last action: {step.last_action} (reward {step.last_reward:g})."
        if step.feedback:
            situation += f" Note: {step.feedback}"
        files = self.memory.list()
        listing = ", ".join(files) if files else "(none yet)"
        conversation: list[dict[str, Any]] = [self.system, {"role": "user", "content":
            f"{situation}\nObservation:\n{step.observation}\n\nYour memory files: {listing}"}]  # fmt: skip

        conversation.append({"role": "user", "content":
            "LOG: record what this observation teaches you that you will need later, with your memory "
            "tools (append, create or rewrite a file), or call no tool if nothing is new."})  # fmt: skip
        self._run_tools(conversation, self.chat(conversation, routine="log", tools=self.tools,
                                               parallel_tool_calls=False, max_tokens=96))

        conversation.append({"role": "user", "content":
            "RECALL: look up what you need from your memory before deciding (search or read), or call no tool."})  # fmt: skip
        self._run_tools(conversation, self.chat(conversation, routine="recall", tools=self.tools,
                                               parallel_tool_calls=False, max_tokens=64))

        conversation.append({"role": "user", "content": "ACT: answer with the name of your next action."})
        return self.chat(conversation, routine="act", tools=self.tools, tool_choice="none",
                         choices=list(step.actions), max_tokens=12)

    def _run_tools(self, conversation: list[dict[str, Any]], reply: Reply) -> None:
        """Add the answer and the results of its tool calls (the first MAX_OPS) to the conversation."""
        conversation.append({"role": "assistant", "content": str(reply) or None, "tool_calls": reply.tool_calls}
                            if reply.tool_calls else {"role": "assistant", "content": str(reply)})  # fmt: skip
        for index, call in enumerate(reply.tool_calls):
            if index < MAX_OPS:
                conversation.append(self.memory.call_tool(call))
            else:
                conversation.append({"role": "tool", "tool_call_id": call.get("id", ""),
                                     "content": f"not done: at most {MAX_OPS} memory operations per routine"})  # fmt: skip
