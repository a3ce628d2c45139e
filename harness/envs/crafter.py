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
from crafter import engine, objects

from harness.envs import crafter_worldgen
from harness.envs.base import (
    STANDARD_TEXT,
    Observation,
    StepResult,
    TaskSpec,
    TextVariant,
    check_action,
)
from harness.envs.crafter_text import balrog_parts, kind_names, local_materials, rich_view
from harness.envs.progression import CRAFTER_ACHIEVEMENTS, crafter_progression

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


class _SharedTextures(engine.Textures):  # type: ignore[misc]
    """crafter's textures, read from disk once per process: every crafter.Env decoded its 56 PNG
    files again (40 ms an episode). They are only read (and resized copies cached) by the views."""

    _loaded: dict[str, tuple[dict[Any, Any], dict[Any, Any]]] = {}

    def __init__(self, directory: Any) -> None:
        key = str(directory)
        if key not in self._loaded:
            super().__init__(directory)
            self._loaded[key] = self._originals, self._textures
        originals, textures = self._loaded[key]
        self._originals: dict[Any, Any] = originals
        self._textures: dict[Any, Any] = textures


engine.Textures = _SharedTextures  # crafter.Env makes its textures by this name


def warm() -> None:
    """Load what every Crafter game needs once in this process: its textures and the compiled
    world generation (a fork server calls it; the forked games then share both)."""
    engine.Textures(crafter.constants.root / "assets")
    crafter_worldgen.warm()


class _DeterministicCrafter(crafter.Env):  # type: ignore[misc]
    """crafter.Env with ordered chunks, private render noise and no per-step pixel render."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed=seed)
        # Swap classes in place: the views hold references to these very objects.
        self._world.__class__ = _OrderedWorld
        self._world.reset()
        self._local_view.__class__ = _QuietNoiseLocalView
        self._local_view._noise_random = np.random.RandomState(seed)

    def reset(self) -> None:
        """crafter.Env.reset, its world made by the compiled generator (the same world, checked by
        tests/test_crafter_worldgen.py): `generate` is the one generator line that differs."""
        center = (self._world.area[0] // 2, self._world.area[1] // 2)
        self._episode += 1
        self._step = 0
        self._world.reset(seed=hash((self._seed, self._episode)) % (2**31 - 1))
        self._update_time()
        self._player = objects.Player(self._world, center)
        self._last_health = self._player.health
        self._world.add(self._player)
        self._unlocked: set[str] = set()
        self.generate(self._world, self._player)
        return self._obs()

    generate = staticmethod(crafter_worldgen.generate_world)

    def _obs(self) -> None:
        return None  # the text observation is built from the world; pixels only on render()


def _observation(game: _DeterministicCrafter, text: TextVariant, names: dict[int, str]) -> Observation:
    raw = {
        "local_materials": local_materials(game),
        "position": (int(game._player.pos[0]), int(game._player.pos[1])),
        "facing": (int(game._player.facing[0]), int(game._player.facing[1])),
        "inventory": dict(game._player.inventory),
        "daylight": float(game._world.daylight),
    }
    if text.observation == "rich":
        return Observation(text=rich_view(game), raw=raw)
    long_lived, short_lived = balrog_parts(game, names)
    return Observation.of_parts(long_lived, short_lived, raw)


class CrafterEnv:
    """Crafter (`crafter` 1.8.3): 17 named actions, progression = achievements unlocked / 22."""

    def __init__(self, task: str = "crafter", text: TextVariant = STANDARD_TEXT, length: int = 10000) -> None:
        if task != "crafter":
            raise ValueError(f"crafter has one task, 'crafter'; got {task!r}")
        self.text = text
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
        self._names: dict[int, str] = {}

    def reset(self, seed: int) -> Observation:
        # A fresh game per episode: crafter derives each reset's world from an episode counter.
        self._game = _DeterministicCrafter(seed=int(seed))
        self._game._length = self._length
        self._game.reset()
        self._names = kind_names(self._game)
        self._game.step(_ACTION_INDEX["Noop"])  # BALROG's reset plays one Noop: the same start
        self._unlocked = set()
        return _observation(self._game, self.text, self._names)

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
        observation = _observation(self._game, self.text, self._names)
        dead = self._game._player.health <= 0
        if newly and self.text.observation == "rich":
            observation.text = "Achievement unlocked: " + ", ".join(sorted(newly)) + "\n" + observation.text
        return StepResult(
            observation=observation,
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
