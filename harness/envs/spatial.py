"""Words for where a thing is relative to the player: compass directions and step offsets."""

from __future__ import annotations


def compass_direction(dx: int, dy: int) -> str:
    """Compass direction of an offset; dx grows to the east, dy grows to the south.

    An offset counts as diagonal when neither axis is under half of the other.
    """
    if dx == 0 and dy == 0:
        return "here"
    vertical = "north" if dy < 0 else "south"
    horizontal = "west" if dx < 0 else "east"
    if abs(dx) * 2 < abs(dy):
        return vertical
    if abs(dy) * 2 < abs(dx):
        return horizontal
    return f"{vertical}{horizontal}"


def step_offsets(dx: int, dy: int) -> str:
    """Exact grid offset in steps, e.g. '2 north, 1 west' (for small grids like Crafter's)."""
    parts = []
    if dy:
        parts.append(f"{abs(dy)} {'north' if dy < 0 else 'south'}")
    if dx:
        parts.append(f"{abs(dx)} {'west' if dx < 0 else 'east'}")
    return ", ".join(parts) if parts else "here"
