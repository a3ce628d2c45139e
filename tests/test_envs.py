"""The three games behind the GameEnv protocol: actions, text, progression, errors."""

import numpy as np
import pytest

from harness.envs import GameEnv, InvalidActionError, TextVariant, make_env, tasks_of
from harness.envs.nle_actions import RAW_KEYS


@pytest.fixture(scope="module")
def crafter() -> GameEnv:
    return make_env("crafter")


def test_every_env_is_a_game_env_with_its_default_action_in_its_actions() -> None:
    for env_name, task in (("crafter", None), ("minihack", "Corridor-R3"), ("nethack", None)):
        game = make_env(env_name, task)
        assert isinstance(game, GameEnv)
        assert game.spec.default_action in game.spec.actions
        for name in game.spec.actions:
            assert name in game.spec.instructions or (name in RAW_KEYS and "a-z, A-Z, 0-9" in game.spec.instructions)
        game.close()


def test_crafter_has_the_17_readable_actions(crafter: GameEnv) -> None:
    assert len(crafter.spec.actions) == 17
    assert {"Noop", "Move West", "Do", "Make Iron Sword", "Place Table"} <= set(crafter.spec.actions)


def test_crafter_text_names_surroundings_facing_vitals_and_inventory(crafter: GameEnv) -> None:
    text = crafter.reset(0).text
    assert "You see:" in text and "You face" in text
    assert "- health: 9/9" in text and "You have nothing in your inventory." in text
    assert " steps to your north" in text  # steps and one of 8 directions, as BALROG


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
                count, direction = part.split(" ")[0], part.split(" ")[-1]
                sign = -1 if direction in ("north", "west") else 1
                if direction in ("north", "south"):
                    dy = sign * int(count)
                else:
                    dx = sign * int(count)
            return dx, dy
    return None


def test_crafter_walking_to_a_tree_described_in_the_text_collects_wood() -> None:
    game = make_env("crafter", text=TextVariant(observation="rich"))  # the view that lists the nearest tree
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
    rich = TextVariant(observation="rich")  # the view that says when it is night
    plain, rendered = make_env("crafter", text=rich), make_env("crafter", text=rich)
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
    assert "\n\nmap:\n" in observation.text and "@" in observation.text
    result = game.step(game.spec.actions[0])
    assert 0.0 <= result.progression <= 1.0
    assert all(not name.isdigit() and len(name) > 1 for name in game.spec.actions)
    game.close()


def test_boxoban_level_follows_the_seed() -> None:
    game = make_env("minihack", "Boxoban-Hard")
    first, again, other = game.reset(5).text, game.reset(5).text, game.reset(6).text
    assert first == again and first != other
    game.close()


def test_nethack_text_has_message_language_view_cursor_screen_and_inventory() -> None:
    game = make_env("nethack")
    text = game.reset(0).text
    for section in ("inventory:\n", "\nmessage:\n", "\n\nlanguage observation:\n", "\n\ncursor:\n", "\n\nmap:\n"):
        assert section in text
    assert "Dlvl:1" in text
    assert "adjacent" in text or "near" in text
    game.close()


def test_nethack_offers_balrogs_vocabulary_without_game_ending_commands() -> None:
    game = make_env("nethack")
    actions = set(game.spec.actions)
    assert len(game.spec.actions) == len(actions) == 86 + 62  # NLE's useful actions + raw keys
    assert {"north", "far east", "search", "eat", "more", "esc", "turnundead", "seespells", "space"} <= actions
    assert set(RAW_KEYS) <= actions and "g" in actions and "Z" in actions and "7" in actions
    assert not {"quit", "save", "travel", "teleport", "options", "redraw", "extcmd", "turn", "number 5"} & actions
    assert not any(len(name) == 2 and name.isdigit() for name in actions)  # no two-digit counts
    game.close()


def test_a_raw_letter_answers_a_nethack_prompt() -> None:
    game = make_env("nethack")
    game.reset(0)
    assert "What do you want to drop? [a-i or ?*]" in game.step("drop").observation.text
    assert "You drop a blessed +1 mace." in game.step("a").observation.text  # item a, not "apply"
    game.close()


def test_nethack_ends_without_game_time_as_balrog_more_pages_included() -> None:
    """BALROG's no_progress_timeout of 150, which NLE counts twice per game step: 75 game steps."""
    game = make_env("nethack")
    game.reset(0)
    game_steps = 0
    for step in range(1, 200):
        result = game.step("inventory" if step % 2 else "esc")  # menus: time stands still
        game_steps += 1 + result.info["more_pages"]  # BALROG counts the pages it turns, too
        if result.truncated:
            break
    assert result.truncated and not result.done
    assert game_steps == 75
    game.close()


def test_minihack_plays_as_balrog_a_random_role_without_autopickup_north_by_default() -> None:
    game = make_env("minihack", "Quest-Easy")
    options = game._env.nethack.options  # type: ignore[attr-defined]
    assert "!autopickup" in options and "name:Agent-@" in options and "race:random" in options
    roles = set()
    for seed in range(3):
        status = next(line for line in game.reset(seed).text.splitlines() if line.startswith("Agent the"))
        roles.add(status.split()[2])
    assert len(roles) == 3  # seeded random roles (MiniHack's own default is one fixed character)
    assert game.spec.default_action == "north" and "esc" not in game.spec.actions
    game.close()


def test_minihack_ends_after_100_game_steps() -> None:
    game = make_env("minihack", "MazeWalk-15x15")
    game.reset(0)
    for step in range(1, 150):
        result = game.step("north" if step % 2 else "south")
        if result.truncated or result.done:
            break
    assert result.truncated and not result.done and step == 100
    game.close()


def test_nethack_progression_ignores_zeroed_stats_after_death() -> None:
    from harness.envs.nethack import NetHackEnv

    game = NetHackEnv()
    observation = game.reset(0).raw
    living = {key: np.array(value) for key, value in observation.items()}
    living["blstats"][12], living["blstats"][18] = 5, 3  # Dlvl 5, Xp 3 while alive
    dlvl5 = 0.026482449457437766  # BALROG's Dlvl:5, above its Xp:3
    assert game._update_progression(living, False, {}, 0.0) == dlvl5
    dead = {key: np.zeros_like(value) for key, value in living.items()}
    assert game._update_progression(dead, True, {}, 0.0) == dlvl5
    game.close()
