"""The public scaffold API: what a submission (or the meta-LLM) writes against.

    from harness.agent import Scaffold, Step

    class Agent(Scaffold):
        def reset(self, task): ...
        def step(self, step: Step) -> str:
            notes = self.memory.search("stairs")
            answer = self.chat([{"role": "user", "content": step.observation}],
                               routine="act", choices=list(step.actions))
            return answer

Every chat call and every memory operation goes through the harness and is recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.memory import Memory

ChatFunction = Callable[..., str]


class Reply(str):
    """The model's answer. It is the answer's text (a `str`, so scaffolds that only read text
    need nothing else), and carries the tool calls the model made (OpenAI format: `id`,
    `type`, `function` with `name` and JSON `arguments`) and why the answer ended."""

    tool_calls: list[dict[str, Any]]
    finish_reason: str | None

    def __new__(cls, text: str, tool_calls: list[dict[str, Any]] | None = None,
                finish_reason: str | None = None) -> Reply:  # fmt: skip
        reply = super().__new__(cls, text)
        reply.tool_calls = list(tool_calls or [])
        reply.finish_reason = finish_reason
        return reply


@dataclass(frozen=True)
class Task:
    """The game task of an episode, as the scaffold sees it."""

    env: str  # crafter | minihack | nethack
    name: str  # e.g. "MazeWalk-9x9"
    instructions: str  # goal, action list with meanings, tips
    actions: tuple[str, ...]  # the valid world actions
    default_action: str  # what the harness plays instead of an invalid action
    max_steps: int  # the episode's step cap
    seed: int = 0  # the episode's seed (the game is reset on it); a scaffold may seed its own draws from it


@dataclass(frozen=True)
class Step:
    """One decision point: the scaffold answers with one of `actions`."""

    index: int  # 0 for the first decision
    observation: str  # the game's text after the last action (after reset at index 0)
    actions: tuple[str, ...]
    last_action: str | None  # the action the game played last (None at index 0)
    last_reward: float
    feedback: str | None  # e.g. the notice that the last answer was not a valid action
    # The observation's short-lived part (status, inventory: BALROG's short-term context), which
    # `observation` starts with, followed by a newline; "" when the view has no such part.
    short_lived: str = ""

    @property
    def long_lived(self) -> str:
        """The observation without its short-lived part: what a history keeps (BALROG's long-term context)."""
        return self.observation[len(self.short_lived) + 1 :] if self.short_lived else self.observation


class Scaffold:
    """Base class of every scaffold. Subclasses override `reset` and `step`.

    The harness gives each episode a fresh instance (made with no arguments), binds its memory
    directory and chat function, then calls `reset(task)` once and `step(step)` until the
    episode ends.
    """

    memory: Memory

    def reset(self, task: Task) -> None:
        """Start an episode of `task` (the memory directory is empty at this point)."""

    def step(self, step: Step) -> str:
        """Return the next world action: one of `step.actions`."""
        raise NotImplementedError("a scaffold must implement step(step) -> action name")

    def state(self) -> Any:
        """What this scaffold keeps between steps beyond its memory directory, as JSON-able data
        (e.g. a short history), or None: no state hook (the default). The harness stores it
        with a step's record whenever it changed, so that a killed episode can continue from
        its last recorded step; without the hook such an episode restarts from step 0."""
        return None

    def load_state(self, state: Any) -> None:
        """Continue from `state`, what `state()` returned after the last recorded step. Called
        when an episode continues, after `reset(task)` (the memory directory then already holds
        what the recorded operations built)."""

    def chat(self, messages: list[dict[str, Any]], routine: str = "act", **generation: Any) -> Reply:
        """Ask the model; the answer is a `Reply` (its text, plus `.tool_calls` and
        `.finish_reason`). `routine` names what the call is for, in the scaffold's own words
        (AUTOMEM's are 'log', 'recall' and 'act', the world action; 'reflect' or 'summarize'
        are as good): the submission's `adapter_routines` go to the memory specialist, the
        memory track trains on any routine but 'act'.
        `generation` takes max_tokens, temperature, stop, tools=[...] (OpenAI format; the
        conversation may then hold assistant messages with `tool_calls` and `tool` messages),
        and choices=[...] (the answer is constrained to one of those strings on servers that
        support it)."""
        chat_function = getattr(self, "_harness_chat", None)
        if chat_function is None:
            raise RuntimeError("chat() is available once the harness has bound the scaffold")
        answer = chat_function(messages, routine, **generation)
        return answer if isinstance(answer, Reply) else Reply(str(answer))

    def _bind(self, memory: Memory, chat_function: ChatFunction) -> None:
        """Called by the harness before `reset`."""
        self.memory = memory
        self._harness_chat = chat_function
