"""The GameEnv protocol: a tiny, stable, text-first interface shared by every game.

Like gymnasium, an env is `reset(seed)` then `step(action)`; unlike gymnasium, actions are
names (strings), observations carry the text the model reads, and every step reports the
game's BALROG-style progression (a fraction 0..1, monotone over the episode).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class InvalidActionError(ValueError):
    """An action name that is not in the env's action list; it never reaches the game."""

    def __init__(self, action: str, valid_actions: list[str]) -> None:
        self.action = action
        self.valid_actions = list(valid_actions)
        shown = ", ".join(repr(name) for name in valid_actions[:40])
        more = f", ... ({len(valid_actions)} in all)" if len(valid_actions) > 40 else ""
        super().__init__(f"unknown action {action!r}; valid actions are: {shown}{more}")


class EnvError(RuntimeError):
    """The game (or the env server hosting it) failed: an infrastructure error, not a move."""


class ReplayDiverged(Exception):
    """The game, replayed on the recorded seed and actions, does not show the recorded observation."""


@dataclass
class Observation:
    """What the agent sees after a reset or a step.

    `text` is the model's view; `raw` holds the game's own structures needed to re-render it
    (numpy arrays or plain values; absent when the observation came over the network without
    them). As in BALROG, a view may have a short-lived part (status, inventory: what an agent
    keeping a history shows for the current step only): then `text` is that part, a newline,
    and the long-lived part, BALROG's layout of the current observation.
    """

    text: str
    raw: dict[str, Any] = field(default_factory=dict)
    short_lived: str = ""

    @classmethod
    def of_parts(cls, long_lived: str, short_lived: str, raw: dict[str, Any] | None = None) -> Observation:
        text = f"{short_lived}\n{long_lived}" if short_lived else long_lived
        return cls(text=text, raw=raw or {}, short_lived=short_lived)

    @property
    def long_lived(self) -> str:
        """The part an agent keeps in its history (the whole text when there is no split)."""
        return self.text[len(self.short_lived) + 1 :] if self.short_lived else self.text


@dataclass
class StepResult:
    """The outcome of one `step`: gymnasium's five values plus progression."""

    observation: Observation
    reward: float
    done: bool  # the game is over (death, win, game's own end)
    truncated: bool  # stopped by a limit (no game-time progress, the game's own step cap)
    progression: float  # BALROG progression so far, 0..1, never decreases within an episode
    info: dict[str, Any] = field(default_factory=dict)


OBSERVATION_VARIANTS = ("balrog", "rich")  # "balrog": the same information as BALROG's text
INSTRUCTION_VARIANTS = ("balrog", "tips")  # "tips": BALROG's information plus our strategy tips


@dataclass(frozen=True)
class TextVariant:
    """Which text the model reads: the observation view and the instructions.

    The standard (both "balrog") gives the model the same information as BALROG's prompts;
    the others are named variants, recorded with every run and never compared with it.
    """

    observation: str = "balrog"
    instructions: str = "balrog"

    def __post_init__(self) -> None:
        if self.observation not in OBSERVATION_VARIANTS:
            raise ValueError(f"unknown observation variant {self.observation!r}; "
                             f"variants: {', '.join(OBSERVATION_VARIANTS)}")  # fmt: skip
        if self.instructions not in INSTRUCTION_VARIANTS:
            raise ValueError(f"unknown instructions variant {self.instructions!r}; "
                             f"variants: {', '.join(INSTRUCTION_VARIANTS)}")  # fmt: skip

    @property
    def is_standard(self) -> bool:
        return self == STANDARD_TEXT

    def to_json(self) -> dict[str, str]:
        return {"observation": self.observation, "instructions": self.instructions}


STANDARD_TEXT = TextVariant()


@dataclass(frozen=True)
class TaskSpec:
    """Static facts about one game task, published for prompts and for the run record."""

    env: str  # crafter | minihack | nethack
    name: str  # e.g. "crafter", "Boxoban-Hard", "NetHackChallenge-v0"
    actions: tuple[str, ...]
    default_action: str  # played instead of an invalid action
    instructions: str  # goal, action list with meanings (and tips in the "tips" variant)


@runtime_checkable
class GameEnv(Protocol):
    """One game task. Not thread-safe; one episode at a time."""

    spec: TaskSpec

    def reset(self, seed: int) -> Observation:
        """Start a new episode whose whole course is fixed by `seed` and the actions played."""
        ...

    def step(self, action: str) -> StepResult:
        """Play one named action. Raises InvalidActionError for names not in `spec.actions`."""
        ...

    def close(self) -> None:
        """Release the game's resources."""
        ...


def check_action(spec: TaskSpec, action: str) -> None:
    """Raise InvalidActionError unless `action` is one of the task's action names."""
    if action not in spec.actions:
        raise InvalidActionError(action, list(spec.actions))
