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
  a line of its own under its plural.

The message is read from the terminal as BALROG reads it (whole menus and text windows down
to their "--More--", "(end)" or "(n of m)" row), and the cursor is described as there.
"""

from __future__ import annotations

from collections import Counter

import nle.nethack as nh
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

# Map symbols (NetHack's defsyms order), named for the model. Orientation is kept where the
# game draws one feature with several symbols (walls, doors, drawbridges).
_WALLS = (
    "vertical wall", "horizontal wall", "northwest corner", "northeast corner",
    "southwest corner", "southeast corner", "crossing wall", "T-wall up", "T-wall down",
    "T-wall west", "T-wall east",
)  # fmt: skip
_TERRAIN = (
    "dark area", *_WALLS, "doorway", "vertical open door", "horizontal open door",
    "vertical closed door", "horizontal closed door", "iron bars", "tree", "floor", "dark floor",
    "corridor", "lit corridor", "staircase up", "staircase down", "ladder up", "ladder down",
    "altar", "grave", "throne", "sink", "fountain", "pool", "ice", "lava",
    "vertical lowered drawbridge", "horizontal lowered drawbridge",
    "vertical raised drawbridge", "horizontal raised drawbridge", "air", "cloud", "water",
)  # fmt: skip
_EFFECTS = (
    "vertical beam", "horizontal beam", "left slant beam", "right slant beam", "digging beam",
    "camera flash", "boomerang", "boomerang", "magic shield", "magic shield", "magic shield",
    "magic shield", "poison cloud", "valid position",
)  # fmt: skip
_PLACES = ("top left", "top center", "top right", "middle left", "middle right",
           "bottom left", "bottom center", "bottom right")  # fmt: skip
_FLOORS = {"floor", "dark floor", "corridor", "lit corridor"}
_WHOLE_MAP_TERRAIN = {
    "vertical closed door", "horizontal closed door", "iron bars", "tree", "staircase up",
    "staircase down", "ladder up", "ladder down", "altar", "grave", "throne", "sink",
    "fountain", "pool", "ice", "lava", "vertical raised drawbridge", "horizontal raised drawbridge",
}  # fmt: skip
_ENDS_RAY = {"dark area", *_WALLS}
# NetHack's warning levels (drawing.c), weakest first.
_WARNINGS = ("worry", "concern", "anxiety", "disquiet", "alarm", "dread")
_APPEARANCE_SUFFIX = {
    nh.RING_CLASS: "ring", nh.POTION_CLASS: "potion", nh.SPBOOK_CLASS: "spellbook",
    nh.WAND_CLASS: "wand",
}  # fmt: skip


def _cmap_name(index: int) -> str:
    trap_offset = len(_TERRAIN)
    if index < trap_offset:
        return _TERRAIN[index]
    effects_offset = trap_offset + 23  # arrow trap .. vibrating square
    if index < effects_offset:
        name = nh.symdef.from_idx(index).explanation
        return "anti magic trap" if name == "anti-magic field" else name
    if index < effects_offset + len(_EFFECTS):
        return _EFFECTS[index - effects_offset]
    return "swallow " + _PLACES[(index - effects_offset - len(_EFFECTS)) % len(_PLACES)]


def _object_name(glyph: int) -> str:
    """What the player sees of an object: its appearance where the game shuffles them."""
    index = nh.glyph_to_obj(glyph)
    obj = nh.objclass(index)
    name, appearance = nh.OBJ_NAME(obj) or "", nh.OBJ_DESCR(obj) or ""
    kind = ord(obj.oc_class)
    if kind in _APPEARANCE_SUFFIX:
        return f"{appearance} {_APPEARANCE_SUFFIX[kind]}"
    if kind == nh.SCROLL_CLASS:
        return f"scroll labeled {appearance}"
    if kind == nh.AMULET_CLASS:
        return appearance if "Amulet" in appearance else f"{appearance} amulet"
    if kind in (nh.ARMOR_CLASS, nh.TOOL_CLASS):
        return appearance or name
    if kind == nh.FOOD_CLASS:
        return name + appearance
    if kind == nh.GEM_CLASS:
        return name if appearance in name else f"{appearance} {name}"
    if kind == nh.VENOM_CLASS:
        return f"splash of {name}"
    return name


def _monster(glyph: int) -> str:
    return str(nh.permonst(nh.glyph_to_mon(glyph)).mname)


def _whole_map_name(glyph: int) -> str:
    """The name a glyph has in the whole-map list ('' when only rays name it, or never)."""
    if glyph >= nh.GLYPH_STATUE_OFF:
        return str(nh.permonst(glyph - nh.GLYPH_STATUE_OFF).mname) + " statue"
    if glyph >= nh.GLYPH_WARNING_OFF:
        return "unknown creature causing you " + _WARNINGS[glyph - nh.GLYPH_WARNING_OFF]
    if glyph >= nh.GLYPH_SWALLOW_OFF:
        return "swallow " + _PLACES[(glyph - nh.GLYPH_SWALLOW_OFF) % len(_PLACES)]
    if glyph >= nh.GLYPH_ZAP_OFF:
        beams = ("horizontal zap beam", "vertical zap beam", "left slant zap beam", "right slant zap beam")
        return beams[(glyph - nh.GLYPH_ZAP_OFF) % len(beams)]
    if glyph >= nh.GLYPH_EXPLODE_OFF:
        places = (*_PLACES[:4], "middle center", *_PLACES[4:])
        return "explosion " + places[(glyph - nh.GLYPH_EXPLODE_OFF) % len(places)]
    if glyph >= nh.GLYPH_CMAP_OFF:
        name = _cmap_name(glyph - nh.GLYPH_CMAP_OFF)
        return name if name in _WHOLE_MAP_TERRAIN else ""
    if glyph >= nh.GLYPH_OBJ_OFF:
        return _object_name(glyph)
    if glyph >= nh.GLYPH_RIDDEN_OFF:
        return "ridden " + _monster(glyph)
    if glyph >= nh.GLYPH_BODY_OFF:
        return str(nh.permonst(glyph - nh.GLYPH_BODY_OFF).mname) + " corpse"
    if glyph >= nh.GLYPH_DETECT_OFF:
        return "detected " + _monster(glyph)
    if glyph >= nh.GLYPH_INVIS_OFF:
        return "invisible creature"
    if glyph >= nh.GLYPH_PET_OFF:
        return "tame " + _monster(glyph)
    return _monster(glyph)


def _ray_name(glyph: int) -> str:
    """The name a glyph has along the rays: terrain that is neither floor nor whole-map."""
    if not nh.GLYPH_CMAP_OFF <= glyph < nh.GLYPH_EXPLODE_OFF:
        return ""
    name = _cmap_name(glyph - nh.GLYPH_CMAP_OFF)
    return "" if name in _FLOORS or name in _WHOLE_MAP_TERRAIN else name


WHOLE_MAP_NAMES = [_whole_map_name(glyph) for glyph in range(nh.MAX_GLYPH)]
RAY_NAMES = [_ray_name(glyph) for glyph in range(nh.MAX_GLYPH)]
_NAMED_WHOLE_MAP = np.array([bool(name) for name in WHOLE_MAP_NAMES])


def pluralize(noun: str) -> str:
    """English plural of a thing's name; for 'X of Y', 'X labeled Y', 'X causing Y' the head X."""
    for joint in (" of ", " labeled ", " causing "):
        head, found, tail = noun.partition(joint)
        if found and head:
            return pluralize(head) + found + tail
    if noun in ("ice", "lava", "water", "air", "cloud"):
        return f"areas of {noun}"
    if noun.endswith(("boots", "shoes", "scales", "lenses", "bars")):
        return noun  # already plural
    if len(noun) > 1 and noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    if noun.endswith(("z", "x", "ch", "sh", "ss", "s")):
        return noun + "es"
    if noun.endswith("ff"):
        return noun[:-2] + "ves"
    if noun.endswith("f"):
        return noun[:-1] + "ves"
    return noun + "s"


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
        if once:
            lines.append(f"{name} {distance} {joined(once)}")
        if several:
            lines.append(f"{pluralize(name)} {distance} {joined(several)}")
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
            name = RAY_NAMES[int(glyphs[y, x])]
            if name:
                things.append((name, x - player_x, y - player_y))
                if name in _ENDS_RAY:
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
    return f"{distance_word(dx, dy)} {direction_word(dx, dy)} {name}".rstrip()
