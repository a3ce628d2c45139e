"""The three games behind the GameEnv protocol: actions, text, progression, errors."""

import numpy as np
import pytest

from harness.envs import GameEnv, InvalidActionError, make_env, tasks_of


@pytest.fixture(scope="module")
def crafter() -> GameEnv:
    return make_env("crafter")


def test_every_env_is_a_game_env_with_its_default_action_in_its_actions() -> None:
    for env_name, task in (("crafter", None), ("minihack", "Corridor-R3"), ("nethack", None)):
        game = make_env(env_name, task)
        assert isinstance(game, GameEnv)
        assert game.spec.default_action in game.spec.actions
        for name in game.spec.actions:
            assert name in game.spec.instructions
        game.close()


def test_crafter_has_the_17_readable_actions(crafter: GameEnv) -> None:
    assert len(crafter.spec.actions) == 17
    assert {"Noop", "Move West", "Do", "Make Iron Sword", "Place Table"} <= set(crafter.spec.actions)


def test_crafter_text_names_surroundings_facing_vitals_and_inventory(crafter: GameEnv) -> None:
    text = crafter.reset(0).text
    assert "You see:" in text and "You face" in text
    assert "health 9/9" in text and "Inventory: empty" in text
    assert " step" in text  # distances in steps


def test_unknown_action_is_refused_with_the_valid_names(crafter: GameEnv) -> None:
    crafter.reset(0)
    with pytest.raises(InvalidActionError) as refused:
        crafter.step("move left")
    assert "Move West" in str(refused.value)
    assert refused.value.valid_actions == list(crafter.spec.actions)


def _offset_of(text: str, thing: str) -> tuple[int, int] | None:
    """(dx, dy) of the nearest `thing` from a Crafter text observation."""
    for line in text.splitlines():
        if line.startswith(f"- {thing}: "):
            dx = dy = 0
            for part in line.split(": ", 1)[1].split(" (")[0].split(", "):
                count, direction = part.split(" ")
                sign = -1 if direction in ("north", "west") else 1
                if direction in ("north", "south"):
                    dy = sign * int(count)
                else:
                    dx = sign * int(count)
            return dx, dy
    return None


def test_crafter_walking_to_a_tree_described_in_the_text_collects_wood() -> None:
    game = make_env("crafter")
    text = game.reset(0).text
    result = None
    for _ in range(60):
        offset = _offset_of(text, "tree")
        assert offset is not None, text
        dx, dy = offset
        if abs(dx) + abs(dy) == 1:
            # Walking into the tree turns the player to face it; then collect.
            toward = {(1, 0): "Move East", (-1, 0): "Move West", (0, 1): "Move South", (0, -1): "Move North"}
            game.step(toward[(dx, dy)])
            result = game.step("Do")
            if "collect_wood" in result.info["achievements"]:
                break
        elif abs(dy) >= abs(dx) and dy:
            result = game.step("Move North" if dy < 0 else "Move South")
        else:
            result = game.step("Move West" if dx < 0 else "Move East")
        text = result.observation.text
    assert result is not None and "collect_wood" in result.info["achievements"]
    assert result.progression == pytest.approx(1 / 22)
    assert "wood 1" in result.observation.text


def test_crafter_render_does_not_change_the_game() -> None:
    plain, rendered = make_env("crafter"), make_env("crafter")
    plain.reset(4), rendered.reset(4)
    night_seen = False
    for index in range(400):  # through nightfall, where render noise used the game RNG
        action = ["Move East", "Move West", "Noop", "Do"][index % 4]
        rendered.render()  # type: ignore[attr-defined]
        a, b = plain.step(action), rendered.step(action)
        assert a.observation.text == b.observation.text
        night_seen = night_seen or "It is night" in a.observation.text
        if a.done:
            break
    assert night_seen  # otherwise the noise path was never exercised


@pytest.mark.parametrize("task", tasks_of("minihack"))
def test_every_minihack_task_plays_with_its_own_action_names(task: str) -> None:
    game = make_env("minihack", task)
    observation = game.reset(0)
    assert "Map:" in observation.text and "@" in observation.text
    result = game.step(game.spec.actions[0])
    assert 0.0 <= result.progression <= 1.0
    assert all(not name.isdigit() and len(name) > 1 for name in game.spec.actions)
    game.close()


def test_boxoban_level_follows_the_seed() -> None:
    game = make_env("minihack", "Boxoban-Hard")
    first, again, other = game.reset(5).text, game.reset(5).text, game.reset(6).text
    assert first == again and first != other
    game.close()


def test_nethack_text_has_message_nearby_map_status_and_inventory() -> None:
    game = make_env("nethack")
    text = game.reset(0).text
    for section in ("Message:", "Nearby:", "Map:", "Status:", "Inventory:"):
        assert section in text
    assert "Dlvl:1" in text
    assert "adjacent" in text or "near" in text
    game.close()


def test_nethack_names_no_raw_keys() -> None:
    game = make_env("nethack")
    assert len(game.spec.actions) == 121
    assert all(len(name) > 1 and not name.isdigit() for name in game.spec.actions)
    assert {"north", "far east", "search", "eat", "more", "esc", "number 5"} <= set(game.spec.actions)
    game.close()


def test_nethack_episode_ends_after_150_steps_without_game_time() -> None:
    game = make_env("nethack")
    game.reset(0)
    for step in range(1, 200):
        result = game.step("inventory" if step % 2 else "esc")  # menus: time stands still
        if result.truncated:
            break
    assert result.truncated and not result.done
    assert step == 150
    game.close()


def test_nethack_progression_ignores_zeroed_stats_after_death() -> None:
    from harness.envs.nethack import NetHackEnv

    game = NetHackEnv()
    observation = game.reset(0).raw
    living = {key: np.array(value) for key, value in observation.items()}
    living["blstats"][12], living["blstats"][18] = 5, 3  # Dlvl 5, Xp 3 while alive
    dlvl5 = 0.026482449457437766  # BALROG's Dlvl:5, above its Xp:3
    assert game._update_progression(living, False, {}) == dlvl5
    dead = {key: np.zeros_like(value) for key, value in living.items()}
    assert game._update_progression(dead, True, {}) == dlvl5
    game.close()
