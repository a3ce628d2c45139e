"""Crafter as a text game, with the two upstream sources of non-determinism removed.

Crafter 1.8.3 keeps each chunk's objects in a `set` (iteration order follows `id()`, i.e.
memory addresses) and its creature balancing picks from that order with the game RNG, so the
same seed and actions diverge across processes after tens of steps. Its night-time render
noise also draws from the game RNG, so rendering changes the game (upstream issue #31). We keep
chunk objects in insertion order and give the renderer its own RNG.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import crafter
import numpy as np
from crafter import engine

from harness.envs.base import (
    STANDARD_TEXT,
    Observation,
    StepResult,
    TaskSpec,
    TextVariant,
    check_action,
)
from harness.envs.progression import CRAFTER_ACHIEVEMENTS, crafter_progression
from harness.envs.spatial import step_offsets

# Readable name -> crafter's internal action name (index order is crafter's own).
ACTION_NAMES: dict[str, str] = {
    "Noop": "noop",
    "Move West": "move_left",
    "Move East": "move_right",
    "Move North": "move_up",
    "Move South": "move_down",
    "Do": "do",
    "Sleep": "sleep",
    "Place Stone": "place_stone",
    "Place Table": "place_table",
    "Place Furnace": "place_furnace",
    "Place Plant": "place_plant",
    "Make Wood Pickaxe": "make_wood_pickaxe",
    "Make Stone Pickaxe": "make_stone_pickaxe",
    "Make Iron Pickaxe": "make_iron_pickaxe",
    "Make Wood Sword": "make_wood_sword",
    "Make Stone Sword": "make_stone_sword",
    "Make Iron Sword": "make_iron_sword",
}
ACTION_MEANINGS: dict[str, str] = {
    "Noop": "do nothing",
    "Move West": "move one step west (also turns you to face west)",
    "Move East": "move one step east (also turns you to face east)",
    "Move North": "move one step north (also turns you to face north)",
    "Move South": "move one step south (also turns you to face south)",
    "Do": "interact with what you face: collect material, drink water, attack, eat",
    "Sleep": "sleep when energy is low (you wake up when rested or hurt)",
    "Place Stone": "place a stone in front of you (needs 1 stone)",
    "Place Table": "place a crafting table in front of you (needs wood)",
    "Place Furnace": "place a furnace in front of you (needs stone, near a table)",
    "Place Plant": "plant a sapling on grass in front of you (needs a sapling)",
    "Make Wood Pickaxe": "craft a wood pickaxe (needs 1 wood, near a table)",
    "Make Stone Pickaxe": "craft a stone pickaxe (needs 1 wood, 1 stone, near a table)",
    "Make Iron Pickaxe": "craft an iron pickaxe (needs wood, coal, iron, near table and furnace)",
    "Make Wood Sword": "craft a wood sword (needs 1 wood, near a table)",
    "Make Stone Sword": "craft a stone sword (needs 1 wood, 1 stone, near a table)",
    "Make Iron Sword": "craft an iron sword (needs wood, coal, iron, near table and furnace)",
}
_ACTION_INDEX = {name: crafter.constants.actions.index(key) for name, key in ACTION_NAMES.items()}

# The standard instructions carry what BALROG's Crafter prompt tells the model (the actions
# with their needs, the 22 achievements, the goal); the "tips" variant adds ours.
INSTRUCTIONS = """You are playing Crafter, a 2D survival and crafting game.

Actions (answer with exactly one name):
{actions}

The 22 achievements:
{achievements}

Unlock as many of the achievements as you can.
"""

TIPS = """
More tips:
- The world is a 64x64 grid. Health, food, drink and energy go from 0 to 9: if any of food,
  drink or energy is 0 you lose health; at health 0 the game ends.
- "Do" acts on the tile you face; you face the direction of your last move attempt.
- Collect wood from trees first, place a table, then make a wood pickaxe to mine stone.
- Stone needs a wood pickaxe, iron needs a stone pickaxe, diamond an iron pickaxe.
- Drink from water and eat cows when food or drink run low; sleep when energy is low.
- Zombies appear on grass, more at night; skeletons live in dark tunnels.
"""


def instructions(text: TextVariant) -> str:
    standard = INSTRUCTIONS.format(
        actions="\n".join(f"- {name}: {meaning}" for name, meaning in ACTION_MEANINGS.items()),
        achievements="\n".join(
            f"{number}. {name.replace('_', ' ').capitalize()}"
            for number, name in enumerate(CRAFTER_ACHIEVEMENTS, start=1)
        ),
    )
    return standard + TIPS if text.instructions == "tips" else standard


# Map area the player sees (crafter's local view: 9 wide, 7 high around the player).
_VIEW_HALF_WIDTH, _VIEW_HALF_HEIGHT = 4, 3


class _InsertionOrderedSet(dict[Any, None]):
    """A set that iterates in insertion order (crafter's chunks used `set`: order by id())."""

    def add(self, item: Any) -> None:
        self[item] = None

    def remove(self, item: Any) -> None:
        del self[item]


class _OrderedWorld(engine.World):  # type: ignore[misc]
    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._chunks: defaultdict[Any, _InsertionOrderedSet] = defaultdict(_InsertionOrderedSet)


class _QuietNoiseLocalView(engine.LocalView):  # type: ignore[misc]
    """Night noise drawn from the view's own RNG, so rendering never advances the game's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._noise_random = np.random.RandomState(0)

    def _noise(self, canvas: np.ndarray, amount: float, stddev: float) -> np.ndarray:
        noise = self._noise_random.uniform(32, 127, canvas.shape[:2])[..., None]
        mask = amount * self._vignette(canvas.shape, stddev)[..., None]
        return (1 - mask) * canvas + mask * noise


class _DeterministicCrafter(crafter.Env):  # type: ignore[misc]
    """crafter.Env with ordered chunks, private render noise and no per-step pixel render."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed=seed)
        # Swap classes in place: the views hold references to these very objects.
        self._world.__class__ = _OrderedWorld
        self._world.reset()
        self._local_view.__class__ = _QuietNoiseLocalView
        self._local_view._noise_random = np.random.RandomState(seed)

    def _obs(self) -> None:
        return None  # the text observation is built from the world; pixels only on render()


_UNSHOWN = {"grass", "sand", "path", None}  # ground BALROG leaves out of the list
_FACING_WORDS = {(-1, 0): "west", (1, 0): "east", (0, -1): "north", (0, 1): "south"}
_VITALS = ("health", "food", "drink", "energy")


def _seen(world: Any, x: int, y: int) -> str | None:
    """What the player sees on one tile: the creature or object there, else the ground."""
    material, obj = world[(x, y)]
    return type(obj).__name__.lower() if obj is not None else material


def _steps(count: int, direction: str) -> str:
    return f"{count} step{'s' if count > 1 else ''} {direction}"


def _balrog_view(env: _DeterministicCrafter) -> str:
    """The standard view: the same information as BALROG's Crafter text.

    Its rules: the 9x7 local view, one entry per kind of thing (ground left out; water only
    at its edge within the view), placed by its north/south then west/east steps; the entry
    kept per kind is the first, in column-by-column order, with the fewest steps on its
    leading axis (north/south, or west/east when on the player's row), as BALROG keeps it.
    Then what the player faces, the vitals and the inventory.
    """
    world, player = env._world, env._player
    px, py = (int(v) for v in player.pos)
    grid = [[_seen(world, px + dx, py + dy) for dy in range(-_VIEW_HALF_HEIGHT, _VIEW_HALF_HEIGHT + 1)]
            for dx in range(-_VIEW_HALF_WIDTH, _VIEW_HALF_WIDTH + 1)]  # fmt: skip
    width, height = len(grid), len(grid[0])

    def water_edge(i: int, j: int) -> bool:
        around = ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1))
        return any(0 <= a < width and 0 <= b < height and grid[a][b] != "water" for a, b in around)

    kept: dict[str, tuple[int, int, int]] = {}  # name -> (leading steps, dx, dy)
    for i in range(width):
        for j in range(height):
            name = grid[i][j]
            dx, dy = i - _VIEW_HALF_WIDTH, j - _VIEW_HALF_HEIGHT
            if name in _UNSHOWN or (dx, dy) == (0, 0) or (name == "water" and not water_edge(i, j)):
                continue
            assert name is not None
            leading = abs(dy) if dy else abs(dx)
            if name not in kept or leading < kept[name][0]:
                kept[name] = (leading, dx, dy)
    lines = []
    if player.sleeping:
        lines.append("You are asleep: your actions do nothing until your energy is full.")
    elif player.health <= 0:
        lines.append("You are dead.")
    if kept:
        lines.append("You see:")
        for name, (_, dx, dy) in kept.items():
            parts = ([_steps(abs(dy), "north" if dy < 0 else "south")] if dy else []) + (
                [_steps(abs(dx), "west" if dx < 0 else "east")] if dx else [])
            lines.append(f"- {name}: {', '.join(parts)}")
    else:
        lines.append("You see nothing around you.")
    fx, fy = int(player.facing[0]), int(player.facing[1])
    facing = _seen(world, px + fx, py + fy)
    lines.append(f"You face {'nothing' if facing in _UNSHOWN else facing} ({_FACING_WORDS[(fx, fy)]}).")
    inventory = player.inventory
    lines.append("Vitals:")
    lines.extend(f"- {name}: {inventory[name]}/9" for name in _VITALS)
    items = [f"- {name}: {count}" for name, count in inventory.items() if name not in _VITALS and count]
    lines.extend(["Inventory:", *items] if items else ["Inventory: empty"])
    return "\n".join(lines)


def _rich_view(env: _DeterministicCrafter) -> str:
    """The "rich" view: nearest tile of every ground and creature kind, exact offsets, night."""
    world, player = env._world, env._player
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


def _raw(env: _DeterministicCrafter) -> dict[str, Any]:
    """The game state behind the text: local materials, position, facing, inventory, light."""
    world, player = env._world, env._player
    px, py = (int(v) for v in player.pos)
    local = np.zeros((2 * _VIEW_HALF_WIDTH + 1, 2 * _VIEW_HALF_HEIGHT + 1), dtype=np.int16)
    for dx in range(-_VIEW_HALF_WIDTH, _VIEW_HALF_WIDTH + 1):
        for dy in range(-_VIEW_HALF_HEIGHT, _VIEW_HALF_HEIGHT + 1):
            material, _ = world[(px + dx, py + dy)]
            local[dx + _VIEW_HALF_WIDTH, dy + _VIEW_HALF_HEIGHT] = world._mat_ids.get(material, 0)
    return {
        "local_materials": local,
        "position": (px, py),
        "facing": (int(player.facing[0]), int(player.facing[1])),
        "inventory": dict(player.inventory),
        "daylight": float(world.daylight),
    }


_VIEWS = {"balrog": _balrog_view, "rich": _rich_view}


class CrafterEnv:
    """Crafter (`crafter` 1.8.3): 17 named actions, progression = achievements unlocked / 22."""

    def __init__(self, task: str = "crafter", text: TextVariant = STANDARD_TEXT, length: int = 10000) -> None:
        if task != "crafter":
            raise ValueError(f"crafter has one task, 'crafter'; got {task!r}")
        self.text = text
        self._view = _VIEWS[text.observation]
        self.spec = TaskSpec(
            env="crafter",
            name="crafter",
            actions=tuple(ACTION_NAMES),
            default_action="Noop",
            instructions=instructions(text),
        )
        self._length = length
        self._game: _DeterministicCrafter | None = None
        self._unlocked: set[str] = set()

    def reset(self, seed: int) -> Observation:
        # A fresh game per episode: crafter derives each reset's world from an episode counter.
        self._game = _DeterministicCrafter(seed=int(seed))
        self._game._length = self._length
        self._game.reset()
        self._game.step(_ACTION_INDEX["Noop"])  # BALROG's reset plays one Noop: the same start
        self._unlocked = set()
        return Observation(text=self._view(self._game), raw=_raw(self._game))

    def step(self, action: str) -> StepResult:
        check_action(self.spec, action)
        if self._game is None:
            raise RuntimeError("call reset(seed) before step()")
        _, reward, done, info = self._game.step(_ACTION_INDEX[action])
        newly = {
            name for name, count in info["achievements"].items()
            if count > 0 and name not in self._unlocked
        }  # fmt: skip
        self._unlocked |= newly
        text, raw = self._view(self._game), _raw(self._game)
        dead = self._game._player.health <= 0
        if newly and self.text.observation == "rich":
            text = "Achievement unlocked: " + ", ".join(sorted(newly)) + "\n" + text
        return StepResult(
            observation=Observation(text=text, raw=raw),
            reward=float(reward),
            done=bool(dead),
            truncated=bool(done and not dead),
            progression=crafter_progression(self._unlocked),
            info={"achievements": sorted(self._unlocked), "new_achievements": sorted(newly)},
        )

    def render(self) -> np.ndarray:
        """The game's own pixel view (64x64 RGB); does not change the game."""
        if self._game is None:
            raise RuntimeError("call reset(seed) before render()")
        return np.asarray(self._game.render())

    def close(self) -> None:
        self._game = None


__all__ = ["CrafterEnv", "CRAFTER_ACHIEVEMENTS"]
