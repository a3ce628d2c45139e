"""The three games behind one GameEnv protocol, by name: `make_env("minihack", "MazeWalk-9x9")`."""

from __future__ import annotations

import importlib

from harness.envs.base import (
    STANDARD_TEXT,
    EnvError,
    GameEnv,
    InvalidActionError,
    Observation,
    StepResult,
    TaskSpec,
    TextVariant,
)

# env name -> (module, class, tasks). Modules load lazily: NLE and crafter are heavy imports.
_REGISTRY: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "crafter": ("harness.envs.crafter", "CrafterEnv", ("crafter",)),
    "minihack": (
        "harness.envs.minihack",
        "MiniHackEnv",
        (
            "Boxoban-Hard", "Boxoban-Medium", "MazeWalk-9x9", "MazeWalk-15x15",
            "Corridor-R3", "CorridorBattle-Dark", "Quest-Easy", "Quest-Medium",
        ),  # fmt: skip
    ),
    "nethack": ("harness.envs.nethack", "NetHackEnv", ("NetHackChallenge-v0",)),
}

ENV_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def tasks_of(env: str) -> tuple[str, ...]:
    """The task names of one env (crafter and nethack have one task each)."""
    if env not in _REGISTRY:
        raise ValueError(f"unknown env {env!r}; envs: {', '.join(ENV_NAMES)}")
    return _REGISTRY[env][2]


def make_env(env: str, task: str | None = None, text: TextVariant = STANDARD_TEXT) -> GameEnv:
    """A new in-process GameEnv for `env` and `task` (default: the env's first task), whose
    model-facing text is `text` (the BALROG-equivalent standard unless a variant is named)."""
    tasks = tasks_of(env)
    task = task or tasks[0]
    if task not in tasks:
        raise ValueError(f"unknown task {task!r} for {env}; tasks: {', '.join(tasks)}")
    module_name, class_name, _ = _REGISTRY[env]
    env_class = getattr(importlib.import_module(module_name), class_name)
    game: GameEnv = env_class(task, text=text)
    return game


__all__ = [
    "ENV_NAMES",
    "STANDARD_TEXT",
    "EnvError",
    "GameEnv",
    "InvalidActionError",
    "Observation",
    "StepResult",
    "TaskSpec",
    "TextVariant",
    "make_env",
    "tasks_of",
]
