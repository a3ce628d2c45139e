"""NetHack (NLE's NetHackChallenge-v0) as a text game with BALROG progression."""

from __future__ import annotations

from typing import Any

import nle  # noqa: F401  (registers the NetHack gymnasium ids)
import nle.nethack as nh
import numpy as np

from harness.envs.base import TaskSpec
from harness.envs.nle_actions import NamedAction, action_list_text, nethack_vocabulary
from harness.envs.nle_game import NLEGameEnv
from harness.envs.progression import nethack_milestone_value

# BALROG's no_progress_timeout. NLE (1.3.0, and BALROG's fork) checks it twice per game step,
# so 75 game steps (--More-- pages included) without game time passing end the episode, there
# as here: the same rule, counted by the same code.
NO_PROGRESS_LIMIT = 150
GAME_STEP_LIMIT = 100_000  # BALROG's max_episode_steps
NETHACK_VOCABULARY = nethack_vocabulary()

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
- When the game asks a question or shows a menu, answer with the letter itself (a-z, A-Z,
  0-9); "esc" cancels; "more" confirms.
- Pray when your HP is very low (not too often); eat when Hungry; search for hidden doors
  in dead ends.
- The episode ends when game time stops advancing for a long stretch (menus and prompts
  do not advance it).
"""


class NetHackEnv(NLEGameEnv):
    """NetHackChallenge-v0 with BALROG's action vocabulary; progression from depth and Xp level."""

    spec = TaskSpec(
        env="nethack",
        name="NetHackChallenge-v0",
        actions=tuple(a.name for a in NETHACK_VOCABULARY),
        default_action="esc",
        instructions=INSTRUCTIONS.format(
            actions=action_list_text(NETHACK_VOCABULARY)
        ),
    )

    def __init__(self, task: str = "NetHackChallenge-v0") -> None:
        if task != "NetHackChallenge-v0":
            raise ValueError(f"nethack has one task, 'NetHackChallenge-v0'; got {task!r}")
        # BALROG's budgets, counted by NLE itself as BALROG does: every game step counts, the
        # --More-- pages our driver turns for the agent included
        super().__init__("NetHackChallenge-v0", game_step_limit=GAME_STEP_LIMIT, no_progress_timeout=NO_PROGRESS_LIMIT)
        self._deepest_level = 1
        self._highest_experience_level = 1
        self._progression = 0.0

    def _vocabulary(self) -> tuple[NamedAction, ...]:
        return NETHACK_VOCABULARY

    def _start_episode(self, observation: dict[str, np.ndarray]) -> None:
        self._deepest_level = 1
        self._highest_experience_level = 1
        self._progression = 0.0

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

    @property
    def deepest_level(self) -> int:
        return self._deepest_level

    @property
    def highest_experience_level(self) -> int:
        return self._highest_experience_level
