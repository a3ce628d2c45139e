"""MiniHack: the eight tasks of the standard suite, each with its own named action set.

Boxoban levels ship with the harness (`data/boxoban-levels`, Apache-2.0, DeepMind's
boxoban-levels at commit d5ca5614): all 3,332 hard levels and the first 10,000 levels of
medium/train (MiniHack would otherwise download them at first use). The level is chosen
from the seed, not from Python's global `random` as MiniHack does.
"""

from __future__ import annotations

import random
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from harness.envs.base import STANDARD_TEXT, TaskSpec, TextVariant
from harness.envs.nle_actions import NamedAction, action_list_text, minihack_vocabulary
from harness.envs.nle_game import NLEGameEnv
from harness.envs.progression import minihack_progression

with warnings.catch_warnings():  # minihack imports pkg_resources, deprecated by setuptools
    warnings.simplefilter("ignore", UserWarning)
    import minihack  # noqa: F401  (registers the MiniHack gymnasium ids)
    from minihack.envs import boxohack

BOXOBAN_LEVELS = Path(str(resources.files("harness.envs") / "data" / "boxoban-levels"))
_TASK_SUCCESSFUL = 2  # MiniHack's end_status on the step that solves the task
GAME_STEP_LIMIT = 100  # BALROG's max_episode_steps: game steps, each --More-- page included

# Each task's goal as BALROG states it (MazeWalk: only "get as far as you can").
_EXPLORE = "Explore the level and reach the staircase down."
_BOXOBAN = ("This is Boxoban, a box-pushing puzzle like Sokoban: push the boulders onto the "
            "fountains. Walking into a boulder pushes it, unless something stands behind it.")  # fmt: skip
_QUEST = ("Explore the level, fight monsters, and find your way through rooms and mazes to "
          "the staircase down.")  # fmt: skip
GOALS: dict[str, str] = {
    "Boxoban-Hard": _BOXOBAN, "Boxoban-Medium": _BOXOBAN,
    "MazeWalk-9x9": "Get as far as you can in the game.",
    "MazeWalk-15x15": "Get as far as you can in the game.",
    "Corridor-R3": _EXPLORE, "CorridorBattle-Dark": _EXPLORE,
    "Quest-Easy": _QUEST, "Quest-Medium": _QUEST,
}  # fmt: skip

# The "tips" variant's more precise goals.
TASKS: dict[str, str] = {
    "Boxoban-Hard": "Push the four boulders (`0`) onto the four fountains ({) in this "
    "Sokoban puzzle. Boulders move when you walk into them and cannot be pulled.",
    "Boxoban-Medium": "Push the four boulders (`0`) onto the four fountains ({) in this "
    "Sokoban puzzle. Boulders move when you walk into them and cannot be pulled.",
    "MazeWalk-9x9": "Find the staircase down (>) in a 9x9 maze and step onto it.",
    "MazeWalk-15x15": "Find the staircase down (>) in a 15x15 maze and step onto it.",
    "Corridor-R3": "Find the staircase down (>) in one of three rooms linked by corridors; "
    "doors may be locked (kick them) or hidden (search).",
    "CorridorBattle-Dark": "Reach the staircase down (>) at the end of a dark corridor "
    "full of monsters; fight them one at a time in the corridor.",
    "Quest-Easy": "Cross a river of lava to reach the staircase down (>): use the items of "
    "the level (e.g. a wand of cold or levitation) and fight the monsters on the way.",
    "Quest-Medium": "Fight through a crowd of monsters in a maze-like level, then cross "
    "the lava to the staircase down (>) using the items you find.",
}

INSTRUCTIONS = """You are playing a MiniHack task (NetHack's engine).

Actions (answer with exactly one name; the key it sends is in parentheses):
{actions}

Repeating one action gains nothing when nothing changes.

{goal}
"""

TIPS = """
More tips:
- {task_goal}
- The episode ends when the task is solved (success), when you die, or at the step limit.
- The map uses @ for you, > for the staircase down, letters for monsters, ` or 0 for
  boulders, {{ for fountains, # for corridors, | and - for walls.
- Keep track of where you have been: dead ends and explored areas are easy to forget.
"""


def instructions(task: str, vocabulary: tuple[NamedAction, ...], text: TextVariant) -> str:
    standard = INSTRUCTIONS.format(actions=action_list_text(vocabulary), goal=GOALS[task])
    return standard + TIPS.format(task_goal=TASKS[task]) if text.instructions == "tips" else standard


def _load_levels(directory: Path) -> list[str]:
    """Boxoban levels of a directory, in file order (MiniHack used os.listdir order)."""
    levels = []
    for path in sorted(directory.glob("*.txt")):
        for block in path.read_text().split(";")[1:]:
            rows = block.split("\n")[1:]  # the first line holds the level number
            levels.append("\n".join(row for row in rows if row) + "\n")
    if not levels:
        raise FileNotFoundError(f"no Boxoban levels under {directory}")
    return levels


class MiniHackEnv(NLEGameEnv):
    """One MiniHack task; progression BALROG's (1 once a step pays at least 1), `solved` apart."""

    def __init__(self, task: str, text: TextVariant = STANDARD_TEXT) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown MiniHack task {task!r}; tasks: {', '.join(TASKS)}")
        self._task = task
        self._boxoban_levels: list[str] = []
        if task.startswith("Boxoban"):
            boxohack.LEVELS_PATH = str(BOXOBAN_LEVELS)  # read by the constructor below
        # BALROG's settings: a random role ("@", drawn from the seeded game RNG, so a seed still
        # gives one game), autopickup off, and 100 game steps (--More-- pages count, as there)
        super().__init__(f"MiniHack-{task}-v0", game_step_limit=GAME_STEP_LIMIT, text=text,
                         character="@", autopickup=False)  # fmt: skip
        if task.startswith("Boxoban"):
            subset = "hard" if task == "Boxoban-Hard" else "medium/train"
            self._boxoban_levels = _load_levels(BOXOBAN_LEVELS / subset)
            self._env._goal_pos_set = set()  # MiniHack reads it before its reset sets it
        names = self.action_names
        self.spec = TaskSpec(
            env="minihack",
            name=task,
            actions=names,
            default_action="north",  # as BALROG: every task can move north
            instructions=instructions(task, self.vocabulary, text),
        )
        self._solved = False

    def _vocabulary(self) -> tuple[NamedAction, ...]:
        return minihack_vocabulary(self._actions)

    def _before_reset(self, seed: int) -> None:
        if self._boxoban_levels:
            index = random.Random(seed).randrange(len(self._boxoban_levels))
            self._env._levels = [self._boxoban_levels[index]]

    def _start_episode(self, observation: dict[str, np.ndarray]) -> None:
        self._solved = self._paid = False

    def _update_progression(
        self, observation: dict[str, np.ndarray], done: bool, info: dict[str, Any], reward: float
    ) -> float:
        # Solved: read end_status, not the flags (MiniHack's timeout also comes back as
        # terminated). Progression is BALROG's rule, a step paying at least 1: a maze solved on a
        # step that also paid a --More-- page's penalty (0.99) is solved with progression 0.
        self._solved = self._solved or int(info.get("end_status", 0)) == _TASK_SUCCESSFUL
        self._paid = self._paid or reward >= 1.0
        return minihack_progression(self._paid)

    def _task_info(self) -> dict[str, Any]:
        return {"solved": self._solved}
