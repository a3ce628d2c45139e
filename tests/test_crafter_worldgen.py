"""The compiled world generation (envs.crafter_worldgen) makes crafter's own worlds: the same
material map, the same objects in the same order, and the world's RNG left in the same state
(every later step of the game draws from it)."""

import numpy as np
import pytest
from crafter import objects, worldgen

from harness.envs import crafter_worldgen
from harness.envs.crafter import _DeterministicCrafter

pytestmark = pytest.mark.skipif(not crafter_worldgen.compiled(), reason="needs numba and opensimplex >= 0.4")


def _world_after(seed: int, generate: object) -> tuple[bytes, list[tuple[str, tuple[int, int]]], tuple]:
    game = _DeterministicCrafter(seed=seed)
    world = game._world
    world.reset(seed=hash((seed, 1)) % (2**31 - 1))  # crafter's first reset
    player = objects.Player(world, (world.area[0] // 2, world.area[1] // 2))
    world.add(player)
    generate(world, player)  # type: ignore[operator]
    placed = [(type(thing).__name__, (int(thing.pos[0]), int(thing.pos[1]))) for thing in world.objects]
    state = world.random.get_state()
    return world._mat_map.tobytes(), placed, (state[1].tobytes(), state[2], state[3], state[4])


@pytest.mark.parametrize("seed", [0, 1, 7, 42, 123, 999, 2024, 31337])
def test_the_compiled_generation_makes_crafters_own_world(seed: int) -> None:
    ours, theirs = _world_after(seed, crafter_worldgen.generate_world), _world_after(seed, worldgen.generate_world)
    assert ours[0] == theirs[0]  # every cell's material
    assert ours[1] == theirs[1]  # cows, zombies, skeletons: kind, place and order
    assert ours[2] == theirs[2]  # the RNG drew exactly what crafter draws


def test_the_noise_fields_are_opensimplex_values() -> None:
    from opensimplex import OpenSimplex

    fields = crafter_worldgen.noise_fields(5, (64, 64))
    simplex = OpenSimplex(5)
    for x, y in [(0, 0), (13, 50), (63, 63)]:
        assert fields["mountain_15"][x, y] == simplex.noise3(x / 15, y / 15, 0)
        assert fields["tunnel_h"][x, y] == simplex.noise3(2 * x / 3, y / 5 / 3, 7)
        assert fields["tunnel_v"][x, y] == simplex.noise3(x / 5 / 3, 2 * y / 3, 7)
    assert np.isfinite(fields["start"]).all()


def test_a_game_played_on_the_compiled_world_is_crafters_own_game(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole episode, not just the map: 300 steps of varied actions, every observation equal."""
    from harness.envs.crafter import CrafterEnv, _DeterministicCrafter

    def play(generate: object) -> list[str]:
        monkeypatch.setattr(_DeterministicCrafter, "generate", staticmethod(generate))
        game = CrafterEnv()
        texts = [game.reset(3).text]
        actions = game.spec.actions
        for index in range(300):
            result = game.step(actions[(index * 7) % len(actions)])
            texts.append(result.observation.text)
            if result.done:
                break
        return texts

    assert play(crafter_worldgen.generate_world) == play(worldgen.generate_world)


def test_worlds_of_more_seeds_are_crafters_own_and_reach_every_rare_branch() -> None:
    """Sixteen more worlds; together they hold every material and creature the generator can
    place, so each decision (and each draw behind it) was taken at least once."""
    kinds: set[str] = set()
    materials: set[int] = set()
    for seed in range(100, 116):
        ours, theirs = _world_after(seed, crafter_worldgen.generate_world), _world_after(seed, worldgen.generate_world)
        assert ours == theirs, f"seed {seed}"
        kinds |= {kind for kind, _ in ours[1]}
        materials |= set(np.frombuffer(ours[0], np.uint8).tolist())
    ids = _DeterministicCrafter(seed=0)._world._mat_ids
    expected = {"water", "grass", "stone", "path", "sand", "tree", "lava", "coal", "iron", "diamond"}
    assert {ids[name] for name in expected} <= materials
    assert {"Player", "Cow", "Zombie", "Skeleton"} <= kinds


def test_draws_read_ahead_leave_the_rng_as_draws_one_at_a_time() -> None:
    one_by_one, ahead = np.random.RandomState(9), np.random.RandomState(9)
    expected = [one_by_one.uniform() for _ in range(37)]
    draws = crafter_worldgen._Draws(ahead)
    draws.reserve(20)
    taken = [draws() for _ in range(20)]
    draws.reserve(100)  # more than will be taken
    taken += [draws() for _ in range(17)]
    draws.commit()
    assert taken == expected
    assert ahead.uniform() == one_by_one.uniform()  # the world's own RNG moved on by exactly 37
