"""BALROG progression formulas, checked against hand-computed values."""

import json
from pathlib import Path

import pytest

from harness.envs.progression import (
    NETHACK_MILESTONES,
    crafter_progression,
    minihack_progression,
    nethack_milestone_value,
    nethack_progression,
)


def test_crafter_three_achievements_is_13_64_percent() -> None:
    score = crafter_progression({"collect_wood", "place_table", "wake_up"})
    assert round(100 * score, 2) == 13.64


def test_crafter_all_achievements_is_full_score_and_unknown_names_do_not_count() -> None:
    from harness.envs.progression import CRAFTER_ACHIEVEMENTS

    assert crafter_progression(CRAFTER_ACHIEVEMENTS) == 1.0
    assert crafter_progression({"collect_wood", "collect_fence"}) == pytest.approx(1 / 22)


def test_minihack_is_one_only_when_solved() -> None:
    assert minihack_progression(True) == 1.0
    assert minihack_progression(False) == 0.0


BALROG_TABLE = json.loads((Path(__file__).parents[2] / "shared" / "data" / "balrog" / "achievements.json").read_text())


def test_the_shipped_table_is_balrogs_unchanged() -> None:
    assert NETHACK_MILESTONES == BALROG_TABLE
    assert sum(key.startswith("Dlvl:") for key in NETHACK_MILESTONES) == 50
    assert sum(key.startswith("Xp:") for key in NETHACK_MILESTONES) == 30


def test_every_dlvl_and_xp_pair_scores_as_balrog() -> None:
    """All 1,500 pairs: the larger of the two exact table values (no rounding, no interpolation)."""
    for dlvl in range(1, 51):
        for xp in range(1, 31):
            expected = max(BALROG_TABLE[f"Dlvl:{dlvl}"], BALROG_TABLE[f"Xp:{xp}"])
            assert nethack_milestone_value(dlvl, xp) == expected, (dlvl, xp)
            assert nethack_progression(range(1, dlvl + 1), range(1, xp + 1)) == expected


def test_levels_the_audit_found_rounded_now_score_exactly() -> None:
    assert nethack_progression([29], [1]) == pytest.approx(0.6465049415992812, abs=0)
    assert nethack_progression([1], [19]) == pytest.approx(0.7015328516442704, abs=0)


def test_a_level_past_the_table_is_worth_nothing_but_earlier_levels_count() -> None:
    assert nethack_milestone_value(52, 0) == 0.0 and nethack_milestone_value(0, 0) == 0.0
    assert nethack_progression([1, 2, 30, 52], [3]) == BALROG_TABLE["Dlvl:30"]  # level-teleported past 50


def test_nethack_start_of_game_is_zero() -> None:
    assert nethack_progression([1], [1]) == 0.0
