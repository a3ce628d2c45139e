"""NetHack (NLE's NetHackChallenge-v0) as a text game with BALROG progression."""

from __future__ import annotations

from typing import Any

import nle  # noqa: F401  (registers the NetHack gymnasium ids)
import nle.nethack as nh
import numpy as np

from harness.envs.base import TaskSpec
from harness.envs.nle_actions import ALL_NETHACK_ACTIONS, action_list_text, name_and_meaning
from harness.envs.nle_game import NLEGameEnv
from harness.envs.progression import nethack_milestone_value

NO_PROGRESS_LIMIT = 150  # agent steps in which game time does not move end the episode

INSTRUCTIONS = """You play NetHack, a classic roguelike: explore the dungeon, fight monsters,
find items, and descend as deep as you can. Your character (role, race, alignment) is
chosen by the game. Progress is measured by the deepest dungeon level you reach and your
highest experience level.

Actions (answer with exactly one name; the key it sends is in parentheses):
{actions}

Tips:
- The map uses @ for you, letters for monsters, > and < for stairs down and up, # for
  corridors or sinks, + for doors or spellbooks, {{ for fountains.
- Go down a staircase with "down" while standing on >.
- When the game asks a question, answer with the action whose key is the letter you want
  (for example "eat" sends e); "esc" cancels; "more" confirms.
- Pray when your HP is very low (not too often); eat when Hungry; search for hidden doors
  in dead ends.
- The episode ends after {limit} actions in which game time does not advance.
"""


class NetHackEnv(NLEGameEnv):
    """NetHackChallenge-v0 with 121 named commands; progression from depth and Xp level."""

    spec = TaskSpec(
        env="nethack",
        name="NetHackChallenge-v0",
        actions=tuple(name_and_meaning(action)[0] for action in ALL_NETHACK_ACTIONS),
        default_action="esc",
        instructions=INSTRUCTIONS.format(
            actions=action_list_text(ALL_NETHACK_ACTIONS), limit=NO_PROGRESS_LIMIT
        ),
    )

    def __init__(self, task: str = "NetHackChallenge-v0") -> None:
        if task != "NetHackChallenge-v0":
            raise ValueError(f"nethack has one task, 'NetHackChallenge-v0'; got {task!r}")
        # NLE's own no-progress check counts --More-- pages too; we count agent steps instead.
        super().__init__("NetHackChallenge-v0", no_progress_timeout=10**9)
        self._deepest_level = 1
        self._highest_experience_level = 1
        self._progression = 0.0
        self._last_game_time = -1
        self._steps_without_time = 0

    def _start_episode(self, observation: dict[str, np.ndarray]) -> None:
        self._deepest_level = 1
        self._highest_experience_level = 1
        self._progression = 0.0
        self._last_game_time = int(observation["blstats"][nh.NLE_BL_TIME])
        self._steps_without_time = 0

    def _update_progression(
        self, observation: dict[str, np.ndarray], done: bool, info: dict[str, Any]
    ) -> float:
        blstats = observation["blstats"]
        # After death NLE zeroes blstats: only read them while the game is running.
        if not done and int(blstats[nh.NLE_BL_DEPTH]) > 0:
            depth, experience = int(blstats[nh.NLE_BL_DEPTH]), int(blstats[nh.NLE_BL_XP])
            self._deepest_level = max(self._deepest_level, depth)
            self._highest_experience_level = max(self._highest_experience_level, experience)
            # every level reached counts, not only the deepest (a level teleport past the table)
            self._progression = max(self._progression, nethack_milestone_value(depth, experience))
        return self._progression

    def _truncated(self, observation: dict[str, np.ndarray]) -> bool:
        game_time = int(observation["blstats"][nh.NLE_BL_TIME])
        if game_time == self._last_game_time:
            self._steps_without_time += 1
        else:
            self._last_game_time = game_time
            self._steps_without_time = 0
        return self._steps_without_time >= NO_PROGRESS_LIMIT

    @property
    def deepest_level(self) -> int:
        return self._deepest_level

    @property
    def highest_experience_level(self) -> int:
        return self._highest_experience_level
