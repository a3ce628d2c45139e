"""BALROG progression formulas, checked against hand-computed values."""

import pytest

from harness.envs.progression import (
    crafter_progression,
    minihack_progression,
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


def test_nethack_dlvl5_xp3_takes_the_larger_table_value() -> None:
    assert nethack_progression(5, 3) == 0.0265


def test_nethack_xp_can_dominate_depth() -> None:
    assert nethack_progression(2, 10) == 0.1791


def test_nethack_levels_between_keys_use_the_key_below() -> None:
    assert nethack_progression(17, 1) == 0.3088  # D[15]
    assert nethack_progression(1, 25) == 0.7174  # X[20]
    assert nethack_progression(60, 1) == 0.8068  # beyond the last key


def test_nethack_start_of_game_is_zero() -> None:
    assert nethack_progression(1, 1) == 0.0
