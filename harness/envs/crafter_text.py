"""What the model reads of a Crafter state: BALROG's text (the standard) and our "rich" view.

The standard is BALROG's Crafter text under BALROG's default configuration (`unique_items`
on, `precise_location` off, no kind skipped, no kind reduced to its edge), byte for byte:
- long-lived part: "You are sleeping..." or "You died." when so; "You see:" and one line per
  kind of thing in the 9x7 view (ground included), "<kind> <N> step(s) to your <direction>",
  N the total of east-west and north-south steps, the direction one of 8 ("north-west");
  the line kept per kind is the first, scanning column by column from the west, at the
  fewest steps; then "You face <kind> at your front."
- short-lived part: "Your status:" with the four vitals out of 9, then the inventory.
Measured identical on the 510 states of `tests/data/balrog/crafter_text_golden.jsonl`,
which BALROG's own code wrote for our game (tests/test_conformance.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.envs.spatial import step_offsets

_VITALS = ("health", "food", "drink", "energy")
_FACING_WORDS = {(-1, 0): "west", (1, 0): "east", (0, -1): "north", (0, 1): "south"}
_VIEW_HALF_WIDTH, _VIEW_HALF_HEIGHT = 4, 3  # crafter's local view: 9 wide, 7 high


def kind_names(game: Any) -> dict[int, str]:
    """The semantic map's ids as BALROG names them: materials by name (the unknown id 0 is
    'None'), creatures and objects by their class name in lower case."""
    names = {index: str(material) for material, index in game._world._mat_ids.items()}
    names.update({index: cls.__name__.lower() for cls, index in game._sem_view._obj_ids.items()})
    return names


def _steps_to(dx: int, dy: int) -> str:
    words = (["north"] if dy < 0 else ["south"] if dy > 0 else []) + (["west"] if dx < 0 else ["east"] if dx > 0 else [])
    distance = abs(dx) + abs(dy)
    return f"{distance} step{'s' if distance > 1 else ''} to your {'-'.join(words)}"


def balrog_parts(game: Any, names: dict[int, str]) -> tuple[str, str]:
    """(long-lived part, short-lived part) of BALROG's text for the game's current state."""
    player = game._player
    semantic = game._sem_view()
    px, py = int(player.pos[0]), int(player.pos[1])
    view_w, view_h = int(game._view[0]), int(game._view[1])
    # The same cut of the semantic map as BALROG's (numpy slicing, edge effects included).
    local = semantic[px - view_w // 2 : px + view_w // 2 + 1, py - view_h // 2 + 1 : py + view_h // 2]
    center_x, center_y = view_w // 2, view_h // 2 - 1
    player_id = next(index for index, name in names.items() if name == "player")
    fx, fy = int(player.facing[0]), int(player.facing[1])
    tx, ty = center_x + fx, center_y + fy
    rows, columns = local.shape
    facing = names[int(local[tx, ty])] if 0 <= tx < columns and 0 <= ty < rows else "nothing"
    nearest: dict[str, tuple[int, str]] = {}
    for i in range(local.shape[0]):
        for j in range(local.shape[1]):
            kind = int(local[i, j])
            if kind == player_id:
                continue
            dx, dy = i - center_x, j - center_y
            name, distance = names[kind], abs(dx) + abs(dy)
            if name not in nearest or nearest[name][0] > distance:
                nearest[name] = (distance, _steps_to(dx, dy))
    seen = ("You see:\n" + "\n".join(f"- {name} {where}" for name, (_, where) in nearest.items())
            if nearest else "You see nothing away from you.")  # fmt: skip
    status = ("You are sleeping, and will not be able take actions until energy is full.\n\n" if player.sleeping
              else "You died.\n\n" if player.health <= 0 else "")  # fmt: skip
    long_lived = (status + "\n\n" + seen + "\n\n" + f"You face {facing} at your front." + "\n\n").strip()
    inventory = player.inventory
    vitals = "Your status:\n" + "\n".join(f"- {name}: {inventory[name]}/9" for name in _VITALS)
    items = "\n".join(f"- {name}: {count}" for name, count in inventory.items() if name not in _VITALS and count != 0)
    held = f"Your inventory:\n{items}" if items else "You have nothing in your inventory."
    return long_lived, (vitals + "\n\n" + held).strip()


def _seen(world: Any, x: int, y: int) -> str | None:
    """What the player sees on one tile: the creature or object there, else the ground."""
    material, obj = world[(x, y)]
    return type(obj).__name__.lower() if obj is not None else material


def rich_view(game: Any) -> str:
    """The "rich" view: nearest tile of every ground and creature kind, exact offsets, night."""
    world, player = game._world, game._player
    px, py = (int(v) for v in player.pos)
    nearest: dict[str, tuple[int, int, int]] = {}
    for dx in range(-_VIEW_HALF_WIDTH, _VIEW_HALF_WIDTH + 1):
        for dy in range(-_VIEW_HALF_HEIGHT, _VIEW_HALF_HEIGHT + 1):
            material, obj = world[(px + dx, py + dy)]
            for thing in (material, type(obj).__name__.lower() if obj is not None else None):
                if thing is None or thing == "player" or (dx == 0 and dy == 0):
                    continue
                steps = abs(dx) + abs(dy)
                if thing not in nearest or steps < nearest[thing][0]:
                    nearest[thing] = (steps, dx, dy)
    lines = ["You see:"]
    for thing, (steps, dx, dy) in sorted(nearest.items(), key=lambda item: (item[1][0], item[0])):
        lines.append(f"- {thing}: {step_offsets(dx, dy)} ({steps} step{'s' if steps > 1 else ''})")
    if len(lines) == 1:
        lines.append("- nothing but darkness")
    fx, fy = int(player.facing[0]), int(player.facing[1])
    facing = _seen(world, px + fx, py + fy)
    lines.append(f"You face {facing or 'the edge of the world'} ({_FACING_WORDS[(fx, fy)]}).")
    inventory = player.inventory
    lines.append("Vitals: " + ", ".join(f"{name} {inventory[name]}/9" for name in _VITALS))
    items = [f"{name.replace('_', ' ')} {count}" for name, count in inventory.items()
             if name not in _VITALS and count > 0]  # fmt: skip
    lines.append("Inventory: " + (", ".join(items) if items else "empty"))
    if world.daylight < 0.35:
        lines.append("It is night: zombies are more frequent and you see less.")
    if player.sleeping:
        lines.append("You are sleeping.")
    return "\n".join(lines)


def local_materials(game: Any) -> np.ndarray:
    """The material ids of the 9x7 local view (the state behind the text)."""
    world, player = game._world, game._player
    px, py = (int(v) for v in player.pos)
    local = np.zeros((2 * _VIEW_HALF_WIDTH + 1, 2 * _VIEW_HALF_HEIGHT + 1), dtype=np.int16)
    for dx in range(-_VIEW_HALF_WIDTH, _VIEW_HALF_WIDTH + 1):
        for dy in range(-_VIEW_HALF_HEIGHT, _VIEW_HALF_HEIGHT + 1):
            material, _ = world[(px + dx, py + dy)]
            local[dx + _VIEW_HALF_WIDTH, dy + _VIEW_HALF_HEIGHT] = world._mat_ids.get(material, 0)
    return local
