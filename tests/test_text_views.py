"""The standard text is BALROG's information (issue 10 parts 5-7): one test per rule, and a
golden text per env for a fixed seed and action list.

Golden files live in tests/golden/; after a deliberate change of the text, rewrite them with
`HARNESS_WRITE_GOLDEN=1 pytest tests/test_text_views.py` and re-record the stored runs.
"""

import os
from pathlib import Path

import nle.nethack as nh
import numpy as np
import pytest

from harness.envs import TextVariant, make_env
from harness.envs.nle_language import (
    PLURALS,
    WHOLE_MAP_NAMES,
    cursor_text,
    describe,
    direction_word,
    distance_word,
    language_view,
    terminal_message,
)

GOLDEN = Path(__file__).parent / "golden"
CMAP = {"floor": 19, "vertical wall": 1, "horizontal wall": 2, "doorway": 12, "vertical closed door": 15,
        "fountain": 31, "arrow trap": 42, "dark area": 0}  # fmt: skip


# -- the language observation's rules ------------------------------------------------------
@pytest.mark.parametrize("dx, dy, word", [
    (1, 0, "adjacent"), (1, 1, "adjacent"), (2, 0, "very near"), (0, 3, "near"), (5, 5, "near"),
    (6, 0, "far"), (19, 3, "far"), (20, 0, "very far"), (-40, 2, "very far"),
])  # fmt: skip
def test_distance_words_by_king_moves(dx: int, dy: int, word: str) -> None:
    assert distance_word(dx, dy) == word


@pytest.mark.parametrize("dx, dy, word", [
    (0, -5, "north"), (1, -3, "northnortheast"), (2, -2, "northeast"), (3, -1, "eastnortheast"),
    (4, 0, "east"), (3, 1, "eastsoutheast"), (2, 2, "southeast"), (1, 3, "southsoutheast"),
    (0, 1, "south"), (-1, 3, "southsouthwest"), (-2, 2, "southwest"), (-3, 1, "westsouthwest"),
    (-7, 0, "west"), (-3, -1, "westnorthwest"), (-1, -1, "northwest"), (-1, -3, "northnorthwest"),
])  # fmt: skip
def test_sixteen_directions(dx: int, dy: int, word: str) -> None:
    assert direction_word(dx, dy) == word


def test_lines_go_farthest_first_then_clockwise_with_plurals_for_repeats() -> None:
    things = [("doorway", 0, -2), ("doorway", 2, -2), ("doorway", -2, 0), ("newt", 1, 0), ("doorway", 0, -2),
              ("fountain", 10, 0), ("newt", -1, 0), ("newt", 0, 1)]  # fmt: skip
    assert describe(things) == [
        "fountain far east",
        "doorway very near northeast and west",
        "doorways very near north",
        "newt adjacent east, south, and west",
    ]


@pytest.mark.parametrize("noun, plural", [
    ("newt", "newts"), ("killer bee", "killer bees"), ("dwarf", "dwarves"), ("fox", "foxes"),
    ("lich", "lichs"), ("clove of garlic", "clove of garlics"), ("Master of Thieves", "Masters of Thieves"),
    ("worthless piece of red glass", "worthless pieces of red glass"), ("bars", "bars"),
    ("lava", "area of lava"), ("stairs down", "stairs downs"),
])  # fmt: skip
def test_plurals_are_balrogs_own_forms(noun: str, plural: str) -> None:
    assert PLURALS[noun] == plural


def test_balrogs_names_are_kept_as_it_spells_them() -> None:
    cmap = {index: WHOLE_MAP_NAMES[nh.GLYPH_CMAP_OFF + index] for index in (17, 23, 24, 27)}
    assert cmap == {17: "bars", 23: "stairs up", 24: "stairs down", 27: "alter"}


def test_a_name_whose_plural_is_itself_prints_the_repeated_places_twice() -> None:
    # BALROG's quirk, reproduced: the single place's line gives way to a second repeated one.
    things = [("bars", 6, 2), ("bars", 7, 2), ("bars", 10, 0), ("tree", 6, 2), ("tree", 7, 2), ("tree", 10, 0)]
    assert describe(things) == ["bars far eastsoutheast", "bars far eastsoutheast",
                                "tree far east", "trees far eastsoutheast"]  # fmt: skip


def _map(player: tuple[int, int] = (40, 10)) -> np.ndarray:
    glyphs = np.full((21, 79), nh.GLYPH_CMAP_OFF + CMAP["floor"], dtype=np.int16)
    glyphs[player[1], player[0]] = nh.GLYPH_MON_OFF  # a monster glyph: the player's own square
    return glyphs


def _put(glyphs: np.ndarray, player: tuple[int, int], dx: int, dy: int, glyph: int) -> None:
    glyphs[player[1] + dy, player[0] + dx] = glyph


def test_walls_traps_and_doorways_only_along_the_eight_rays_up_to_nine_squares() -> None:
    player, glyphs = (40, 10), _map()
    cmap = {name: nh.GLYPH_CMAP_OFF + index for name, index in CMAP.items()}
    _put(glyphs, player, 3, 0, cmap["vertical wall"])   # east: shown, ends the ray
    _put(glyphs, player, 5, 0, cmap["vertical wall"])   # behind it: hidden
    _put(glyphs, player, 2, 2, cmap["arrow trap"])      # southeast: a trap does not end the ray
    _put(glyphs, player, 4, 4, cmap["horizontal wall"])  # behind the trap: shown
    _put(glyphs, player, 0, -9, cmap["doorway"])        # north, 9 squares: shown
    _put(glyphs, player, -2, 0, cmap["vertical closed door"])  # west: whole-map feature
    _put(glyphs, player, -4, 0, cmap["vertical wall"])  # a closed door does not end the ray
    _put(glyphs, player, 2, 1, cmap["vertical wall"])   # off every ray: not shown
    _put(glyphs, player, -1, 0, cmap["floor"])
    lines = language_view(glyphs, *player).splitlines()
    assert lines == [
        "doorway far north",
        "vertical wall near east and west",
        "horizontal wall near southeast",
        "arrow trap very near southeast",
        "vertical closed door very near west",
    ]
    glyphs[player[1] - 9, player[0]] = cmap["floor"]
    glyphs[player[1] - 10, player[0]] = cmap["doorway"]  # 10 squares out: past the ray
    assert "doorway" not in language_view(glyphs, *player)


def test_dark_area_ends_a_ray_and_whole_map_things_show_anywhere() -> None:
    player, glyphs = (40, 10), _map()
    _put(glyphs, player, 0, 1, nh.GLYPH_CMAP_OFF + CMAP["dark area"])
    _put(glyphs, player, 0, 3, nh.GLYPH_CMAP_OFF + CMAP["vertical wall"])  # behind the dark area
    _put(glyphs, player, 30, 7, nh.GLYPH_CMAP_OFF + CMAP["fountain"])  # far off any ray
    _put(glyphs, player, -25, -3, nh.GLYPH_PET_OFF + nh.glyph_to_mon(nh.GLYPH_MON_OFF + 5))
    text = language_view(glyphs, *player)
    pet = nh.permonst(5).mname
    assert text.splitlines() == [
        "fountain very far eastsoutheast",
        f"tame {pet} very far westnorthwest",
        "dark area adjacent south",
    ]


def test_objects_read_as_the_player_sees_them() -> None:
    player, glyphs = (40, 10), _map()
    scroll = next(i for i in range(nh.NUM_OBJECTS) if ord(nh.objclass(i).oc_class) == nh.SCROLL_CLASS
                  and nh.OBJ_DESCR(nh.objclass(i)))  # fmt: skip
    _put(glyphs, player, 1, 0, nh.GLYPH_OBJ_OFF + scroll)
    assert language_view(glyphs, *player) == f"scroll labeled {nh.OBJ_DESCR(nh.objclass(scroll))} adjacent east"


def _tty(*rows: str) -> np.ndarray:
    screen = np.full((24, 80), ord(" "), dtype=np.uint8)
    for index, row in enumerate(rows):
        screen[index, : len(row)] = list(row.encode())
    return screen


def test_message_is_the_top_row_or_a_whole_window_down_to_its_end_marker() -> None:
    assert terminal_message(_tty("You see here a newt corpse.", "", "  ---")) == "You see here a newt corpse."
    menu = _tty("                    Weapons", "                    a - a mace", "", "                    (end)")
    assert terminal_message(menu) == "Weapons\na - a mace\n(end)"
    pages = _tty("  Things", "  a - one", "  (1 of 2)", "  later row")
    assert terminal_message(pages) == "Things\na - one\n(1 of 2)"
    more = _tty("You hit the newt.--More--")
    assert terminal_message(more) == "You hit the newt.--More--"
    assert terminal_message(_tty()) == ""


def test_cursor_on_the_player_on_the_map_or_off_it() -> None:
    player, glyphs = (40, 10), _map()
    _put(glyphs, player, 3, 0, nh.GLYPH_CMAP_OFF + CMAP["fountain"])
    me = nh.permonst(0).mname
    assert cursor_text(glyphs, *player, np.array([11, 40])) == f"Yourself a {me}"
    assert cursor_text(glyphs, *player, np.array([11, 43])) == "near east fountain"
    assert cursor_text(glyphs, *player, np.array([0, 12])) == ""  # on the message row


def test_a_menu_reaches_the_model_whole_with_its_header() -> None:
    game = make_env("nethack")
    game.reset(0)
    text = game.step("inventory").observation.text
    message = text.split("message:\n", 1)[1].split("\n\nlanguage observation:", 1)[0]
    assert message.splitlines()[0] == "Weapons" and message.endswith("(end)")
    assert "a - a blessed +1 mace (weapon in hand)" in message
    game.close()


# -- Crafter ---------------------------------------------------------------------------------
def _crafter_scene(layout: dict[tuple[int, int], str]) -> str:
    """The standard text of a Crafter world made grass around the player, plus `layout`."""
    game = make_env("crafter")
    game.reset(0)
    world = game._game._world  # type: ignore[attr-defined]
    player = game._game._player  # type: ignore[attr-defined]
    px, py = (int(v) for v in player.pos)
    for obj in list(world.objects):
        if obj is not player:
            world.remove(obj)
    for dx in range(-4, 5):
        for dy in range(-3, 4):
            world[(px + dx, py + dy)] = layout.get((dx, dy), "grass")
    player.facing = (0, 1)
    return game.step("Noop").observation.long_lived


def test_crafter_lists_every_kind_once_at_its_fewest_steps_ground_included() -> None:
    text = _crafter_scene({(-4, 1): "tree", (0, -2): "tree", (0, 1): "sand", (3, 3): "stone"})
    lines = text.splitlines()
    # BALROG's defaults: ground is listed, the kept tile is the one with the fewest steps in
    # all (the tree 2 north over the one 5 away), lines in the order the kinds are first met
    # scanning column by column from the west.
    assert lines[0] == "You see:"
    assert lines[1:] == ["- grass 1 step to your west", "- tree 2 steps to your north",
                         "- sand 1 step to your south", "- stone 6 steps to your south-east", "",
                         "You face sand at your front."]  # fmt: skip


def test_crafter_keeps_the_first_tile_met_among_equally_near_ones() -> None:
    text = _crafter_scene({(2, 0): "stone", (-2, 0): "stone", (0, 3): "water"})
    assert "- stone 2 steps to your west" in text and "- stone 2 steps to your east" not in text
    assert "- water 3 steps to your south" in text  # no kind is reduced to its edge


# -- instructions and variants ---------------------------------------------------------------
def test_standard_instructions_carry_balrogs_information_and_no_tips() -> None:
    crafter = make_env("crafter").spec.instructions
    assert "22 achievements" in crafter and "Collect diamond" in crafter and "More tips" not in crafter
    maze = make_env("minihack", "MazeWalk-9x9").spec.instructions
    assert "Get as far as you can" in maze and "9x9 maze" not in maze
    assert "push the boulders onto the fountains" in make_env("minihack", "Boxoban-Hard").spec.instructions
    nethack = make_env("nethack").spec.instructions
    assert "letter alone" in nethack and "Pray" not in nethack


def test_tips_and_rich_views_are_named_variants() -> None:
    tips = TextVariant(instructions="tips")
    assert "More tips" in make_env("crafter", text=tips).spec.instructions
    assert "9x9 maze" in make_env("minihack", "MazeWalk-9x9", text=tips).spec.instructions
    rich = make_env("nethack", text=TextVariant(observation="rich")).reset(0).text
    assert "Nearby:" in rich and "Language observation:" not in rich
    with pytest.raises(ValueError, match="unknown observation variant"):
        TextVariant(observation="fancy")


# -- golden texts ----------------------------------------------------------------------------
GOLDEN_EPISODES = {
    "crafter": ("crafter", 0, ["Move West", "Do", "Move North", "Noop", "Do", "Move East"]),
    "minihack": ("MazeWalk-9x9", 0, ["west", "west", "north", "south", "east", "east"]),
    "nethack": ("NetHackChallenge-v0", 0, ["inventory", "esc", "west", "search", "drop", "a", "north"]),
}


def _transcript(env: str) -> str:
    task, seed, actions = GOLDEN_EPISODES[env]
    game = make_env(env, task)
    parts = [f"### instructions\n{game.spec.instructions}", f"### reset({seed})\n{game.reset(seed).text}"]
    for action in actions:
        parts.append(f"### {action}\n{game.step(action).observation.text}")
    game.close()
    return "\n".join(parts) + "\n"


@pytest.mark.parametrize("env", sorted(GOLDEN_EPISODES))
def test_golden_standard_text(env: str) -> None:
    path = GOLDEN / f"{env}.txt"
    text = _transcript(env)
    if os.environ.get("HARNESS_WRITE_GOLDEN") == "1":
        path.write_text(text)
    assert path.read_text() == text, f"the standard {env} text changed; see this file's docstring"
