"""NetHack (NLE's NetHackChallenge-v0) as a text game with BALROG progression."""

from __future__ import annotations

from typing import Any

import nle  # noqa: F401  (registers the NetHack gymnasium ids)
import nle.nethack as nh
import numpy as np

from harness.envs.base import STANDARD_TEXT, TaskSpec, TextVariant
from harness.envs.nle_actions import NamedAction, action_list_text, nethack_vocabulary
from harness.envs.nle_game import NLEGameEnv
from harness.envs.progression import nethack_milestone_value

# BALROG's no_progress_timeout. NLE (1.3.0, and BALROG's fork) checks it twice per game step,
# so 75 game steps (--More-- pages included) without game time passing end the episode, there
# as here: the same rule, counted by the same code.
NO_PROGRESS_LIMIT = 150
GAME_STEP_LIMIT = 100_000  # BALROG's max_episode_steps
NETHACK_VOCABULARY = nethack_vocabulary()

# The standard instructions carry what BALROG's NetHack prompt tells the model; the "tips"
# variant adds ours.
INSTRUCTIONS = """You are playing NetHack. Get as far as you can in the game.

Actions (answer with exactly one name; the key it sends is in parentheses):
{actions}

Answering the game:
- When the game asks which item to use (e.g. "What do you want to wield? [ab or ?*]"),
  answer with the item's letter alone, e.g. "a".
- When it asks "In what direction?", answer with a direction.
- A message ending in --More-- goes on: "more" shows the rest.
- Read the latest message first, then the language observation and the screen.
- Walking into a monster attacks it. Walking into a wall or solid stone gets you nowhere
  ("It's a wall.", "It's solid stone."): go another way.
- Explore the level to find the staircase down to the next one.
"""

TIPS = """
More tips:
- Progress is measured by the deepest dungeon level you reach and your highest experience
  level; your character (role, race, alignment) is chosen by the game.
- The map uses @ for you, letters for monsters, > and < for stairs down and up, # for
  corridors or sinks, + for doors or spellbooks, {{ for fountains.
- Go down a staircase with "down" while standing on >.
- Pray when your HP is very low (not too often); eat when Hungry; search for hidden doors
  in dead ends.
- The episode ends when game time stops advancing for a long stretch (menus and prompts
  do not advance it).
"""


def instructions(text: TextVariant) -> str:
    standard = INSTRUCTIONS.format(actions=action_list_text(NETHACK_VOCABULARY))
    return standard + TIPS.format() if text.instructions == "tips" else standard


class NetHackEnv(NLEGameEnv):
    """NetHackChallenge-v0 with BALROG's action vocabulary; progression from depth and Xp level."""

    def __init__(self, task: str = "NetHackChallenge-v0", text: TextVariant = STANDARD_TEXT) -> None:
        if task != "NetHackChallenge-v0":
            raise ValueError(f"nethack has one task, 'NetHackChallenge-v0'; got {task!r}")
        # BALROG's budgets, counted by NLE itself as BALROG does: every game step counts, the
        # --More-- pages our driver turns for the agent included
        super().__init__("NetHackChallenge-v0", game_step_limit=GAME_STEP_LIMIT, text=text,
                         no_progress_timeout=NO_PROGRESS_LIMIT)  # fmt: skip
        self.spec = TaskSpec(
            env="nethack",
            name="NetHackChallenge-v0",
            actions=tuple(a.name for a in NETHACK_VOCABULARY),
            default_action="esc",
            instructions=instructions(text),
        )
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
        self, observation: dict[str, np.ndarray], done: bool, info: dict[str, Any], reward: float
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
