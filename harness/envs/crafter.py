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

from harness.envs.base import Observation, StepResult, TaskSpec, check_action
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

INSTRUCTIONS = """You play Crafter, a 2D survival and crafting game on a 64x64 grid world.
Goal: unlock as many of the 22 achievements as you can: collect wood, sapling, stone, coal,
iron, diamond and drink; place a table, furnace, plant and stone; make wood, stone and iron
pickaxes and swords; eat a cow and a plant; defeat a zombie and a skeleton; wake up after
sleeping. Health, food, drink and energy go from 0 to 9: if any of food, drink or energy is 0
you lose health; at health 0 the game ends.

Actions (answer with exactly one name):
{actions}

Tips:
- "Do" acts on the tile you face; you face the direction of your last move attempt.
- Collect wood from trees first, place a table, then make a wood pickaxe to mine stone.
- Stone needs a wood pickaxe, iron needs a stone pickaxe, diamond an iron pickaxe.
- Drink from water and eat cows when food or drink run low; sleep when energy is low.
- Zombies appear on grass, more at night; skeletons live in dark tunnels.
"""

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


def _describe(env: _DeterministicCrafter) -> tuple[str, dict[str, Any]]:
    """Text of what the player sees, faces, feels and carries; and the raw local view."""
    world, player = env._world, env._player
    px, py = (int(v) for v in player.pos)
    nearest: dict[str, tuple[int, int, int]] = {}
    local = np.zeros((2 * _VIEW_HALF_WIDTH + 1, 2 * _VIEW_HALF_HEIGHT + 1), dtype=np.int16)
    for dx in range(-_VIEW_HALF_WIDTH, _VIEW_HALF_WIDTH + 1):
        for dy in range(-_VIEW_HALF_HEIGHT, _VIEW_HALF_HEIGHT + 1):
            material, obj = world[(px + dx, py + dy)]
            local[dx + _VIEW_HALF_WIDTH, dy + _VIEW_HALF_HEIGHT] = world._mat_ids.get(material, 0)
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
    facing_material, facing_obj = world[(px + fx, py + fy)]
    facing = type(facing_obj).__name__.lower() if facing_obj is not None else facing_material
    facing_dir = {(-1, 0): "west", (1, 0): "east", (0, -1): "north", (0, 1): "south"}[(fx, fy)]
    lines.append(f"You face {facing or 'the edge of the world'} ({facing_dir}).")
    inventory = player.inventory
    vitals = ("health", "food", "drink", "energy")
    lines.append("Vitals: " + ", ".join(f"{name} {inventory[name]}/9" for name in vitals))
    items = [f"{name.replace('_', ' ')} {count}" for name, count in inventory.items()
             if name not in vitals and count > 0]  # fmt: skip
    lines.append("Inventory: " + (", ".join(items) if items else "empty"))
    if world.daylight < 0.35:
        lines.append("It is night: zombies are more frequent and you see less.")
    if player.sleeping:
        lines.append("You are sleeping.")
    raw = {
        "local_materials": local,
        "position": (px, py),
        "facing": (fx, fy),
        "inventory": dict(inventory),
        "daylight": float(world.daylight),
    }
    return "\n".join(lines), raw


class CrafterEnv:
    """Crafter (`crafter` 1.8.3): 17 named actions, progression = achievements unlocked / 22."""

    spec = TaskSpec(
        env="crafter",
        name="crafter",
        actions=tuple(ACTION_NAMES),
        default_action="Noop",
        instructions=INSTRUCTIONS.format(
            actions="\n".join(f"- {name}: {meaning}" for name, meaning in ACTION_MEANINGS.items())
        ),
    )

    def __init__(self, task: str = "crafter", length: int = 10000) -> None:
        if task != "crafter":
            raise ValueError(f"crafter has one task, 'crafter'; got {task!r}")
        self._length = length
        self._game: _DeterministicCrafter | None = None
        self._unlocked: set[str] = set()

    def reset(self, seed: int) -> Observation:
        # A fresh game per episode: crafter derives each reset's world from an episode counter.
        self._game = _DeterministicCrafter(seed=int(seed))
        self._game._length = self._length
        self._game.reset()
        self._unlocked = set()
        text, raw = _describe(self._game)
        return Observation(text=text, raw=raw)

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
        text, raw = _describe(self._game)
        dead = self._game._player.health <= 0
        if newly:
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
