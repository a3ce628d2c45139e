"""Text observations for NLE games (NetHack, MiniHack), written from NLE's own arrays.

The text has five parts: the game message, a language description of nearby things
(BALROG-style distance words and compass directions), the map rows as the terminal shows
them, the two status lines, and the inventory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import nle.nethack as nh
import numpy as np

from harness.envs.spatial import compass_direction, distance_word

_BORING_CMAP = {0, 19, 20}  # solid rock / unexplored, lit floor, dark floor
_APPEARANCE_CLASSES = {
    nh.POTION_CLASS: "potion", nh.SCROLL_CLASS: "scroll", nh.RING_CLASS: "ring",
    nh.WAND_CLASS: "wand", nh.AMULET_CLASS: "amulet", nh.SPBOOK_CLASS: "spellbook",
}  # fmt: skip

# Glyph kinds: 0 = not described, 1 = map feature (nearest one per name), 2 = creature or item.
_FEATURE, _THING = 1, 2


def _object_name(glyph: int) -> str:
    """What the player sees of an object: its appearance when the game shuffles appearances."""
    obj = nh.objclass(nh.glyph_to_obj(glyph))
    name, appearance = nh.OBJ_NAME(obj), nh.OBJ_DESCR(obj)
    object_class = ord(obj.oc_class)
    if object_class in _APPEARANCE_CLASSES and appearance:
        return f"{appearance} {_APPEARANCE_CLASSES[object_class]}"
    return appearance or name or "strange object"


def _build_glyph_tables() -> tuple[list[str], np.ndarray]:
    names = ["" for _ in range(nh.MAX_GLYPH)]
    kinds = np.zeros(nh.MAX_GLYPH, dtype=np.int8)
    for glyph in range(nh.MAX_GLYPH):
        if nh.glyph_is_pet(glyph):
            names[glyph] = "tame " + nh.permonst(nh.glyph_to_mon(glyph)).mname
        elif nh.glyph_is_invisible(glyph):
            names[glyph] = "invisible creature"
        elif nh.glyph_is_body(glyph):
            names[glyph] = nh.permonst(glyph - nh.GLYPH_BODY_OFF).mname + " corpse"
        elif nh.glyph_is_statue(glyph):
            names[glyph] = "statue of a " + nh.permonst(glyph - nh.GLYPH_STATUE_OFF).mname
        elif nh.glyph_is_monster(glyph):
            names[glyph] = nh.permonst(nh.glyph_to_mon(glyph)).mname
        elif nh.glyph_is_object(glyph):
            names[glyph] = _object_name(glyph)
        elif nh.glyph_is_warning(glyph):
            names[glyph] = "unseen danger"
        elif nh.glyph_is_swallow(glyph):
            names[glyph] = "inside of a monster that swallowed you"
        elif nh.glyph_is_cmap(glyph):
            cmap = nh.glyph_to_cmap(glyph)
            if cmap in _BORING_CMAP:
                continue
            names[glyph] = nh.symdef.from_idx(cmap).explanation
            kinds[glyph] = _FEATURE
            continue
        elif glyph >= nh.GLYPH_EXPLODE_OFF:
            names[glyph] = "explosion or magic ray"
        else:
            continue
        kinds[glyph] = _THING
    return names, kinds


GLYPH_NAMES, GLYPH_KINDS = _build_glyph_tables()


def _decode(row: np.ndarray) -> str:
    return bytes(row).split(b"\0", 1)[0].decode("latin-1")


def message_text(message: np.ndarray) -> str:
    """The game's top-line message as text."""
    return _decode(message).strip()


def describe_surroundings(glyphs: np.ndarray, player_x: int, player_y: int) -> str:
    """One line per kind of visible thing: the nearest ones, with distance and direction."""
    rows, columns = np.nonzero(GLYPH_KINDS[glyphs])
    found: dict[str, list[tuple[int, int, int]]] = {}
    for y, x in zip(rows.tolist(), columns.tolist()):
        if x == player_x and y == player_y:
            continue
        name = GLYPH_NAMES[glyphs[y, x]]
        found.setdefault(name, []).append((max(abs(x - player_x), abs(y - player_y)), x, y))
    lines = []
    order = sorted(found.items(), key=lambda item: (min(item[1])[0], item[0]))
    for name, places in order:
        places.sort()
        shown = places[: 3 if GLYPH_KINDS[glyphs[places[0][2], places[0][1]]] == _THING else 1]
        where = "; ".join(
            f"{distance_word(x - player_x, y - player_y)} {compass_direction(x - player_x, y - player_y)}"
            for _, x, y in shown
        )
        more = f" (+{len(places) - len(shown)} more)" if len(places) > len(shown) else ""
        lines.append(f"- {name}: {where}{more}")
    return "\n".join(lines) if lines else "- nothing in view"


def map_rows(tty_chars: np.ndarray) -> str:
    """The map area of the terminal (rows 1-21), cropped to the columns and rows in use."""
    rows = [_decode(row).rstrip() for row in tty_chars[1:22]]
    used = [row for row in rows if row.strip()]
    if not used:
        return "(nothing drawn)"
    left = min(len(row) - len(row.lstrip()) for row in used)
    first = next(i for i, row in enumerate(rows) if row.strip())
    last = max(i for i, row in enumerate(rows) if row.strip())
    return "\n".join(row[left:] for row in rows[first : last + 1])


def status_lines(tty_chars: np.ndarray) -> str:
    """The two bottom status lines of the terminal."""
    return "\n".join(_decode(row).strip() for row in tty_chars[22:24])


def inventory_text(inv_letters: np.ndarray, inv_strs: np.ndarray) -> str:
    """'a: a +1 long sword (weapon in hand)', one line per item."""
    lines = []
    for letter, text in zip(inv_letters.tolist(), inv_strs):
        if letter == 0:
            break
        lines.append(f"{chr(letter)}: {_decode(text)}")
    return "\n".join(lines) if lines else "(empty)"


def observation_text(observation: Mapping[str, Any], messages: list[str]) -> str:
    """The full text view from NLE arrays plus the messages gathered during the step."""
    blstats = observation["blstats"]
    message = " ".join(text for text in messages if text) or "(no message)"
    sections = [
        f"Message: {message}",
        "Nearby:\n" + describe_surroundings(
            observation["glyphs"], int(blstats[nh.NLE_BL_X]), int(blstats[nh.NLE_BL_Y])
        ),
        "Map:\n" + map_rows(observation["tty_chars"]),
        "Status:\n" + status_lines(observation["tty_chars"]),
    ]
    if "inv_letters" in observation:
        sections.append(
            "Inventory:\n" + inventory_text(observation["inv_letters"], observation["inv_strs"])
        )
    return "\n\n".join(sections)
