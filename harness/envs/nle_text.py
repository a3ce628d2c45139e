"""Text observations for NLE games (NetHack, MiniHack), written from NLE's own arrays.

Two views, chosen by the suite's `observation` setting:
- "balrog" (the standard): what BALROG's hybrid prompt gives the model: the message, the
  language observation (`nle_language`), the cursor, the terminal rows 1-23 (map and status
  lines, as they are), and the inventory, in BALROG's layout and bytes.
- "rich": the message, the nearest few of each kind of thing (BALROG's distance words, 8-way
  directions), the map
  rows cropped to the part in use, the status lines, and the inventory.
Both read the message as BALROG does, from the terminal: whole menus and text windows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import nle.nethack as nh
import numpy as np

from harness.envs.base import Observation
from harness.envs.nle_language import cursor_text, distance_word, language_view
from harness.envs.spatial import compass_direction

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
# Each glyph's name as a small integer, so that grouping by name stays in numpy.
_NAME_LIST = sorted(set(GLYPH_NAMES))
_NAME_IDS = np.array([_NAME_LIST.index(name) for name in GLYPH_NAMES], dtype=np.int32)
_SHOWN_PER_KIND = {_FEATURE: 1, _THING: 3}  # how many of one name the text places


def _decode(row: np.ndarray) -> str:
    return bytes(row).split(b"\0", 1)[0].decode("latin-1")


def describe_surroundings(glyphs: np.ndarray, player_x: int, player_y: int) -> str:
    """One line per kind of visible thing: the nearest ones, with distance and direction."""
    rows, columns = np.nonzero(GLYPH_KINDS[glyphs])
    keep = (rows != player_y) | (columns != player_x)
    rows, columns = rows[keep], columns[keep]
    if not len(rows):
        return "- nothing in view"
    found = glyphs[rows, columns]
    dx, dy = columns - player_x, rows - player_y
    distance = np.maximum(np.abs(dx), np.abs(dy))
    order = np.lexsort((columns, rows, distance))  # nearest first, then top-left first
    name_ids = _NAME_IDS[found[order]]
    kinds = GLYPH_KINDS[found[order]]
    counts = np.bincount(name_ids)
    # rank (position in nearest-first order) -> (name id, places); map features show their
    # nearest instance only, so numpy finds them; creatures and items are few: loop them.
    entries: dict[int, tuple[int, list[int]]] = {}
    feature_ranks = np.flatnonzero(kinds == _FEATURE)
    _, first = np.unique(name_ids[feature_ranks], return_index=True)
    for rank in feature_ranks[first].tolist():
        entries[rank] = (int(name_ids[rank]), [rank])
    first_rank_of: dict[int, int] = {}
    for rank in np.flatnonzero(kinds == _THING).tolist():
        name_id = int(name_ids[rank])
        if name_id not in first_rank_of:
            first_rank_of[name_id] = rank
            entries[rank] = (name_id, [])
        places = entries[first_rank_of[name_id]][1]
        if len(places) < _SHOWN_PER_KIND[_THING]:
            places.append(rank)
    lines = []
    for rank in sorted(entries):
        name_id, ranks = entries[rank]
        where = []
        for r in ranks:
            x, y = int(dx[order[r]]), int(dy[order[r]])
            where.append(f"{distance_word(x, y)} {compass_direction(x, y)}")
        more = int(counts[name_id]) - len(ranks)
        lines.append(f"- {_NAME_LIST[name_id]}: {'; '.join(where)}" + (f" (+{more} more)" if more else ""))
    return "\n".join(lines)


def _screen_rows(tty_chars: np.ndarray, first: int, last: int) -> list[str]:
    width = tty_chars.shape[1]
    block = tty_chars[first:last].tobytes().replace(b"\0", b" ").decode("latin-1")
    return [block[i : i + width].rstrip() for i in range(0, len(block), width)]


def map_rows(tty_chars: np.ndarray) -> str:
    """The map area of the terminal (rows 1-21), cropped to the columns and rows in use."""
    rows = _screen_rows(tty_chars, 1, 22)
    used = [i for i, row in enumerate(rows) if row]
    if not used:
        return "(nothing drawn)"
    rows = rows[used[0] : used[-1] + 1]
    left = min(len(row) - len(row.lstrip()) for row in rows if row)
    return "\n".join(row[left:] for row in rows)


def status_lines(tty_chars: np.ndarray) -> str:
    """The two bottom status lines of the terminal."""
    return "\n".join(row.strip() for row in _screen_rows(tty_chars, 22, 24))


def inventory_text(inv_letters: np.ndarray, inv_strs: np.ndarray) -> str:
    """'a: a +1 long sword (weapon in hand)', one line per item."""
    lines = []
    for letter, text in zip(inv_letters.tolist(), inv_strs):
        if letter == 0:
            break
        lines.append(f"{chr(letter)}: {_decode(text)}")
    return "\n".join(lines) if lines else "(empty)"


def terminal_rows(tty_chars: np.ndarray) -> str:
    """Terminal rows 1-23 (the map and the two status lines) as they are, each ended by a
    newline: BALROG's map section, trailing blanks and all."""
    return "".join(bytes(row).decode("latin-1") + "\n" for row in tty_chars[1:])


def balrog_view(observation: Mapping[str, Any], message: str) -> Observation:
    """The standard view: BALROG's hybrid NetHack text, byte for byte. Long-lived part: the
    message, the language observation, the cursor (what is under it, then "(x=, y=)"), and
    the terminal's rows 1-23 as they are; short-lived part: the inventory. Each section is
    "<label>:", its text and a blank line, as BALROG joins them."""
    blstats, cursor = observation["blstats"], observation["tty_cursor"]
    x, y = int(blstats[nh.NLE_BL_X]), int(blstats[nh.NLE_BL_Y])
    terminal = terminal_rows(observation["tty_chars"])
    cursor_where = f"{cursor_text(observation['glyphs'], x, y, cursor)}\n(x={int(cursor[1])}, y={int(cursor[0])})"
    long_lived = "\n".join(f"{label}:\n{text}\n" for label, text in (
        ("message", message), ("language observation", language_view(observation["glyphs"], x, y)),
        ("cursor", cursor_where), ("map", terminal)))  # fmt: skip
    inventory = inventory_text(observation["inv_letters"], observation["inv_strs"]) if "inv_letters" in observation else ""
    return Observation.of_parts(long_lived, f"inventory:\n{inventory}\n")


def rich_view(observation: Mapping[str, Any], message: str) -> Observation:
    """The "rich" view: nearest things, cropped map, status lines, inventory."""
    blstats = observation["blstats"]
    sections = [
        f"Message: {message or '(no message)'}",
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
    return Observation(text="\n\n".join(sections))


VIEWS = {"balrog": balrog_view, "rich": rich_view}
