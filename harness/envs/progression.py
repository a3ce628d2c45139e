"""BALROG progression formulas: the 0..1 score each game reports for an episode."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

CRAFTER_ACHIEVEMENTS: tuple[str, ...] = (
    "collect_coal", "collect_diamond", "collect_drink", "collect_iron", "collect_sapling",
    "collect_stone", "collect_wood", "defeat_skeleton", "defeat_zombie", "eat_cow",
    "eat_plant", "make_iron_pickaxe", "make_iron_sword", "make_stone_pickaxe",
    "make_stone_sword", "make_wood_pickaxe", "make_wood_sword", "place_furnace",
    "place_plant", "place_stone", "place_table", "wake_up",
)  # fmt: skip

# The probability that a human player who reached a milestone goes on to win: BALROG's table,
# shipped unchanged (data/balrog/README.md). Only the "Dlvl:N" and "Xp:N" keys are scored.
NETHACK_MILESTONES: dict[str, float] = json.loads(
    (Path(__file__).parent / "data" / "balrog" / "achievements.json").read_text()
)


def crafter_progression(unlocked: Iterable[str]) -> float:
    """Unlocked achievements / 22 (unknown names are ignored)."""
    return len(set(unlocked) & set(CRAFTER_ACHIEVEMENTS)) / len(CRAFTER_ACHIEVEMENTS)


def minihack_progression(paid_at_least_one: bool) -> float:
    """BALROG's rule: 1 once a step's reward (its --More-- pages' included) is at least 1, else 0.
    BALROG sets it anew on every step; a MiniHack step paying 1 ends the episode, so the two agree
    on every episode (tests/test_conformance.py). Whether the task was solved is kept apart."""
    return 1.0 if paid_at_least_one else 0.0


def nethack_milestone_value(dungeon_level: int, experience_level: int) -> float:
    """The table's value of one moment: the larger of its `Dlvl:N` and `Xp:N` entries. A level
    the table does not list (Dlvl 0 after death, a depth past 50) is worth nothing: levels are
    never rounded to a neighbouring key."""
    return max(NETHACK_MILESTONES.get(f"Dlvl:{dungeon_level}", 0.0), NETHACK_MILESTONES.get(f"Xp:{experience_level}", 0.0))


def nethack_progression(dungeon_levels: Iterable[int], experience_levels: Iterable[int]) -> float:
    """The highest table value among every dungeon level and experience level reached in the
    episode, as BALROG scores it."""
    return max([0.0, *(nethack_milestone_value(d, 0) for d in dungeon_levels),
                *(nethack_milestone_value(0, x) for x in experience_levels)])  # fmt: skip
