"""Run inside the balrog-nle virtualenv (no harness import): BALROG's own text for given states.

    python balrog_side.py texts STATES.npz OUT.json   # per state: message, language observation,
                                                      # cursor, inventory (BALROG's C++ calls)
    python balrog_side.py names OUT.json              # BALROG's name and plural of every glyph

The glyph names are read by placing each glyph, once and twice, on an otherwise empty floor
and reading what BALROG's language observation says: off the 8 rays (the whole-map list), and
on the east ray (the ray-only list), then followed by a doorway (whether the glyph ends a ray).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
from nle import nethack as nh
from nle import nle_language_obsv

LANGUAGE = nle_language_obsv.NLELanguageObsv()
_FLOOR = nh.GLYPH_CMAP_OFF + 19
_DOORWAY = nh.GLYPH_CMAP_OFF + 12
_PLAYER_X, _PLAYER_Y = 40, 10
_WHOLE_MAP_AT = ((46, 12), (47, 12))  # far eastsoutheast, both: off every ray
_RAY_AT = ((44, 10), (45, 10))  # near east, both


def _glyph_text(things: list[tuple[int, int, int]]) -> str:
    glyphs = np.full((21, 79), _FLOOR, dtype=np.int16)
    blstats = np.zeros(27, dtype=np.int64)
    blstats[0], blstats[1] = _PLAYER_X, _PLAYER_Y
    glyphs[_PLAYER_Y, _PLAYER_X] = nh.GLYPH_MON_OFF
    for x, y, glyph in things:
        glyphs[y, x] = glyph
    return LANGUAGE.text_glyphs(glyphs, blstats).decode("latin-1")


def _name(text: str, where: str) -> str:
    line = text.split("\n")[0]
    return line[: -len(where) - 1] if line.endswith(" " + where) else ""


def names() -> dict[str, list[Any]]:
    table: dict[str, list[Any]] = {"whole": [], "whole_plural": [], "ray": [], "ray_plural": [], "ends_ray": []}
    (wx, wy), (wx2, wy2) = _WHOLE_MAP_AT
    (rx, ry), (rx2, ry2) = _RAY_AT
    for glyph in range(nh.MAX_GLYPH):
        whole = _name(_glyph_text([(wx, wy, glyph)]), "far eastsoutheast")
        table["whole"].append(whole)
        table["whole_plural"].append(_name(_glyph_text([(wx, wy, glyph), (wx2, wy2, glyph)]), "far eastsoutheast") if whole else "")
        ray = "" if whole else _name(_glyph_text([(rx, ry, glyph)]), "near east")
        table["ray"].append(ray)
        pair = _glyph_text([(rx, ry, glyph), (rx2, ry2, glyph)]) if ray else ""
        table["ray_plural"].append(_name(pair, "near east") if ray else "")
        after = _glyph_text([(rx, ry, glyph), (rx2, ry2, _DOORWAY)]) if ray else ""
        table["ends_ray"].append(bool(ray) and "doorway" not in after)
    return table


def texts(states_path: str) -> list[dict[str, str]]:
    states = np.load(states_path)
    out = []
    for index in range(states["glyphs"].shape[0]):
        glyphs, blstats = states["glyphs"][index], states["blstats"][index]
        out.append({
            "message": LANGUAGE.text_message(states["tty_chars"][index]).decode("latin-1"),
            "language": LANGUAGE.text_glyphs(glyphs, blstats).decode("latin-1"),
            "cursor": LANGUAGE.text_cursor(glyphs, blstats, states["tty_cursor"][index]).decode("latin-1"),
            "inventory": LANGUAGE.text_inventory(states["inv_strs"][index], states["inv_letters"][index]).decode("latin-1"),
        })
    return out


if __name__ == "__main__":
    command = sys.argv[1]
    result = names() if command == "names" else texts(sys.argv[2])
    with open(sys.argv[-1], "w", encoding="utf-8") as out:
        json.dump(result, out)
