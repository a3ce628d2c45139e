"""BALROG progression formulas: the 0..1 score each game reports for an episode."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping

CRAFTER_ACHIEVEMENTS: tuple[str, ...] = (
    "collect_coal", "collect_diamond", "collect_drink", "collect_iron", "collect_sapling",
    "collect_stone", "collect_wood", "defeat_skeleton", "defeat_zombie", "eat_cow",
    "eat_plant", "make_iron_pickaxe", "make_iron_sword", "make_stone_pickaxe",
    "make_stone_sword", "make_wood_pickaxe", "make_wood_sword", "place_furnace",
    "place_plant", "place_stone", "place_table", "wake_up",
)  # fmt: skip

# Probability that a human player who reached the level goes on to win (BALROG's tables).
NETHACK_DUNGEON_LEVEL_PROGRESSION: dict[int, float] = {
    1: 0.0, 2: 0.0154, 3: 0.0175, 4: 0.0212, 5: 0.0265, 6: 0.0354, 7: 0.0485, 8: 0.0696,
    9: 0.0977, 10: 0.1256, 11: 0.1613, 12: 0.2061, 13: 0.2566, 14: 0.2925, 15: 0.3088,
    20: 0.3790, 25: 0.4664, 30: 0.6913, 40: 0.7610, 50: 0.8068,
}  # fmt: skip
NETHACK_EXPERIENCE_LEVEL_PROGRESSION: dict[int, float] = {
    1: 0.0, 2: 0.0185, 3: 0.0208, 4: 0.0242, 5: 0.0291, 6: 0.0369, 7: 0.0508, 8: 0.0745,
    9: 0.1170, 10: 0.1791, 11: 0.2548, 12: 0.3326, 13: 0.4144, 14: 0.4940, 15: 0.5779,
    20: 0.7174, 30: 0.7805,
}  # fmt: skip


def crafter_progression(unlocked: Iterable[str]) -> float:
    """Unlocked achievements / 22 (unknown names are ignored)."""
    return len(set(unlocked) & set(CRAFTER_ACHIEVEMENTS)) / len(CRAFTER_ACHIEVEMENTS)


def minihack_progression(solved: bool) -> float:
    """1 if the task was solved, else 0."""
    return 1.0 if solved else 0.0


def _table_lookup(table: Mapping[int, float], level: int) -> float:
    """Value of the highest listed key at or below `level` (0 below the first key)."""
    keys = sorted(table)
    position = bisect.bisect_right(keys, level)
    return table[keys[position - 1]] if position else 0.0


def nethack_progression(deepest_dungeon_level: int, highest_experience_level: int) -> float:
    """max(D[deepest Dlvl], X[highest Xp level]) with BALROG's tables."""
    return max(
        _table_lookup(NETHACK_DUNGEON_LEVEL_PROGRESSION, deepest_dungeon_level),
        _table_lookup(NETHACK_EXPERIENCE_LEVEL_PROGRESSION, highest_experience_level),
    )
