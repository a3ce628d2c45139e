"""BALROG's language observation of an NLE game, written from its rules in our own code.

What the model reads about the map (the rules of BALROG's `nle_language_obsv`, in our words):
- Whole map: every monster, object, statue, warning, effect, and the interesting terrain
  (closed doors, bars, trees, stairs, ladders, altar, grave, throne, sink, fountain, pool,
  ice, lava, raised drawbridges) wherever it is drawn, except the player's own square.
- Rays: the other terrain (walls, doorways, open doors, traps, dark area; never floors or
  corridors) only along the 8 compass rays, up to 9 squares out; a ray ends at the first
  dark area or wall it names. Closed doors and raised drawbridges belong to the whole-map
  list, so they do not end a ray (as in BALROG).
- Position: a distance word by king moves (1 adjacent, 2 very near, 3-5 near, 6-19 far, 20+
  very far) and one of 16 directions (the straight axis left over after the diagonal steps,
  then the diagonal: "eastnortheast" is 3 east and 1 north).
- Order: farthest first, then clockwise from north; one line per (name, distance), its
  directions in order of first appearance; a name seen more than once in one direction gets
  a line of its own under its plural (where the plural is the name itself, BALROG prints
  that line twice and no line for the single places: reproduced).
- Names and plurals: BALROG's, read from its compiled code as data
  (data/balrog/nle_glyph_names.json), so that its spellings and plural forms are kept.

The message is read from the terminal as BALROG reads it (whole menus and text windows down
to their "--More--", "(end)" or "(n of m)" row), and the cursor is described as there.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

MAP_WIDTH, MAP_HEIGHT = 79, 21
RAY_LENGTH = 9

DIRECTIONS_CLOCKWISE = (
    "north", "northnortheast", "northeast", "eastnortheast", "east", "eastsoutheast", "southeast",
    "southsoutheast", "south", "southsouthwest", "southwest", "westsouthwest", "west",
    "westnorthwest", "northwest", "northnorthwest",
)  # fmt: skip
DISTANCES_FARTHEST_FIRST = ("very far", "far", "near", "very near", "adjacent")
_RANK = {
    (distance, direction): rank
    for rank, (distance, direction) in enumerate(
        (d, r) for d in DISTANCES_FARTHEST_FIRST for r in DIRECTIONS_CLOCKWISE
    )
}

# BALROG's names and plurals of every glyph, and which glyphs end a ray: data read from
# BALROG's compiled code (data/balrog/README.md), its spellings and plural forms as they are.
_NAMES = json.loads((Path(__file__).parent / "data" / "balrog" / "nle_glyph_names.json").read_text())
WHOLE_MAP_NAMES: list[str] = _NAMES["whole"]
RAY_NAMES: list[str] = _NAMES["ray"]
_ENDS_RAY = np.array(_NAMES["ends_ray"], dtype=bool)
_NAMED_WHOLE_MAP = np.array([bool(name) for name in WHOLE_MAP_NAMES])
PLURALS: dict[str, str] = {
    name: plural
    for names, plurals in ((WHOLE_MAP_NAMES, _NAMES["whole_plural"]), (RAY_NAMES, _NAMES["ray_plural"]))
    for name, plural in zip(names, plurals) if name
}  # fmt: skip


def distance_word(dx: int, dy: int) -> str:
    steps = max(abs(dx), abs(dy))
    if steps <= 1:
        return "adjacent"
    if steps == 2:
        return "very near"
    if steps <= 5:
        return "near"
    if steps <= 19:
        return "far"
    return "very far"


def direction_word(dx: int, dy: int) -> str:
    """One of 16 directions; dx grows east, dy grows south (map rows)."""
    north = -dy
    diagonal_steps = min(abs(dx), abs(north))
    diagonal = ""
    if diagonal_steps:
        diagonal = ("north" if north > 0 else "south") + ("east" if dx > 0 else "west")
    rest_x = dx - diagonal_steps if dx > 0 else dx + diagonal_steps
    rest_north = north - diagonal_steps if north > 0 else north + diagonal_steps
    vertical = "north" if rest_north > 0 else "south" if rest_north < 0 else ""
    horizontal = "east" if rest_x > 0 else "west" if rest_x < 0 else ""
    return vertical + horizontal + diagonal


def joined(words: list[str]) -> str:
    """'a', 'a and b', 'a, b, and c'."""
    if len(words) <= 2:
        return " and ".join(words)
    return ", ".join(words[:-1]) + ", and " + words[-1]


def describe(things: list[tuple[str, int, int]]) -> list[str]:
    """Lines for (name, dx, dy) entries, grouped and ordered by the rules above. Entries in
    one place keep their given order (whole map row by row first, then the rays)."""
    placed = sorted(
        ((name, distance_word(dx, dy), direction_word(dx, dy)) for name, dx, dy in things),
        key=lambda entry: _RANK[(entry[1], entry[2])],
    )
    groups: dict[tuple[str, str], list[str]] = {}
    for name, distance, direction in placed:
        groups.setdefault((name, distance), []).append(direction)
    lines = []
    for (name, distance), directions in groups.items():
        counts = Counter(directions)
        once = [d for d in dict.fromkeys(directions) if counts[d] == 1]
        several = [d for d in dict.fromkeys(directions) if counts[d] > 1]
        plural = PLURALS.get(name, name)
        if once and several and plural == name:
            once = several  # BALROG's quirk: one name for both lines, the repeated places twice
        if once:
            lines.append(f"{name} {distance} {joined(once)}")
        if several:
            lines.append(f"{plural} {distance} {joined(several)}")
    return lines


_RAYS = ((1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1))  # east, clockwise


def language_view(glyphs: np.ndarray, player_x: int, player_y: int) -> str:
    """The language observation of a 21x79 glyph map around the player at (x, y)."""
    things: list[tuple[str, int, int]] = []
    rows, columns = np.nonzero(_NAMED_WHOLE_MAP[glyphs])
    for row, column in zip(rows.tolist(), columns.tolist()):
        if (column, row) != (player_x, player_y):
            things.append((WHOLE_MAP_NAMES[int(glyphs[row, column])], column - player_x, row - player_y))
    for step_x, step_y in _RAYS:
        for offset in range(1, RAY_LENGTH + 1):
            x, y = player_x + step_x * offset, player_y + step_y * offset
            if not (0 <= x < MAP_WIDTH and 0 <= y < MAP_HEIGHT):
                break
            glyph = int(glyphs[y, x])
            name = RAY_NAMES[glyph]
            if name:
                things.append((name, x - player_x, y - player_y))
                if _ENDS_RAY[glyph]:
                    break
    return "\n".join(describe(things))


def _row(tty_chars: np.ndarray, index: int, start: int = 0) -> str:
    return bytes(tty_chars[index, start:]).decode("latin-1").replace("\0", " ").strip(" \x1a")


def _ends_page(row: str) -> bool:
    if "--More--" in row or "(end)" in row:
        return True
    at = row.find(" of ")  # "(3 of 5)": one digit each side
    return at >= 2 and len(row) > at + 5 and row[at - 2] == "(" and row[at + 5] == ")"


def terminal_message(tty_chars: np.ndarray) -> str:
    """The message as the terminal shows it: the top row, or, when a window is open, every
    non-blank row from the top down to the row that ends its page. A death screen (whose
    second row holds 'Points' or 'list!') ends at two blank rows."""
    first, second = _row(tty_chars, 0), _row(tty_chars, 1)
    if not first and not second:
        return ""
    top = bytes(tty_chars[0]).decode("latin-1")
    indent = len(top) - len(top.lstrip(" ")) if first else 0
    death_screen = "Points" in second or "list!" in second
    lines: list[str] = []
    blank_rows = 0
    for index in range(tty_chars.shape[0]):
        row = _row(tty_chars, index, indent)
        blank_rows = 0 if row else blank_rows + 1
        if row:
            lines.append(row)
        if _ends_page(row):
            return "\n".join(lines)
        if death_screen and blank_rows > 1:
            return "\n".join(lines)
    return first


def cursor_text(glyphs: np.ndarray, player_x: int, player_y: int, tty_cursor: np.ndarray) -> str:
    """Where the terminal cursor is and what is under it, when it is on the map."""
    row, column = int(tty_cursor[0]), int(tty_cursor[1])
    x, y = column, row - 1  # terminal row 0 holds the message
    if not (0 <= x < MAP_WIDTH and 0 <= y < MAP_HEIGHT) or (x, y) == (0, 0):
        return ""
    name = WHOLE_MAP_NAMES[int(glyphs[y, x])]
    if (x, y) == (player_x, player_y):
        return f"Yourself a {name}"
    dx, dy = x - player_x, y - player_y
    return f"{distance_word(dx, dy)} {direction_word(dx, dy)} {name}"  # a trailing space when unnamed, as BALROG
