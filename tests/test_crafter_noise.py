"""Crafter's noise loop compiled ahead of time (envs.crafter_noise) keeps its promises: the values
of numba's just-in-time loop, a binary for any x86-64, and a fork server that makes crafter's own
worlds without importing numba."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from crafter import worldgen
from test_crafter_worldgen import _world_after

from harness.envs import crafter_noise, crafter_worldgen

BUILT = crafter_noise.load()
needs_build = pytest.mark.skipif(BUILT is None, reason="not compiled here: python -m harness.envs.crafter_noise "
                                                       "(make's install does it)")  # fmt: skip
REPO = Path(__file__).resolve().parent.parent


def test_make_compiles_the_loop_on_this_machine() -> None:
    """`make` builds it (a C compiler and numba's pycc are on every machine the Makefile installs)."""
    assert BUILT is not None, ("harness/envs/_crafter_noise is missing or stale: "
                               "run `python -m harness.envs.crafter_noise` (make's install runs it)")  # fmt: skip


@needs_build
def test_every_field_is_the_just_in_time_loops_value() -> None:
    from numba import njit
    from opensimplex.internals import _init

    from harness.envs.crafter_noise_loop import noise_field

    just_in_time = njit(cache=True)(noise_field)
    for seed in (0, 1, 5, 77, 123456, 2**31 - 2):
        perm, grad = _init(seed)
        for _, z, size, x_scale, y_scale in crafter_worldgen.FIELDS:
            xs = crafter_worldgen._coordinates(64, x_scale, size)
            ys = crafter_worldgen._coordinates(64, y_scale, size)
            assert np.array_equal(BUILT(xs, ys, float(z), perm, grad), just_in_time(xs, ys, float(z), perm, grad))


@needs_build
@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) is not installed")
def test_the_binary_runs_on_any_x86_64() -> None:
    """Built for LLVM's generic x86-64: no AVX (VEX-encoded) instruction, which a build for this
    machine's own CPU would use, and another x86-64 may lack."""
    library = next(crafter_noise.HERE.glob(f"{crafter_noise.MODULE}*.so"))
    code = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip
    instructions = re.findall(r"^\s*[0-9a-f]+:\s+([a-z][a-z0-9.]*)", code, re.MULTILINE)
    assert len(instructions) > 1000  # the disassembly was read
    beyond = sorted({name for name in instructions if name.startswith("v") and name not in ("verr", "verw")})
    assert not beyond, f"AVX instructions in {library.name}: {beyond[:10]}"


@needs_build
def test_a_module_built_from_other_opensimplex_code_is_not_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    stamp = crafter_noise.source_stamp()
    assert stamp is not None and json.loads(crafter_noise.stamp_path().read_text()) == stamp
    monkeypatch.setattr(crafter_noise, "_loaded", None)
    monkeypatch.setattr(crafter_noise, "source_stamp", lambda: {**stamp, "opensimplex_sha256": "0" * 64})
    assert crafter_noise.load() is None


@needs_build
def test_the_fork_servers_crafter_makes_crafters_own_worlds_without_numba() -> None:
    """What a Crafter run's fork server preloads (envs.crafter_warm), in a fresh interpreter: numba
    is never imported, the worlds are crafter's own (made here by crafter with numba), and a
    program forked from it can still import numba."""
    seeds = (3, 11)
    probe = (
        "import sys, json\n"
        "import harness.envs.crafter_warm\n"
        "assert 'numba' not in sys.modules and 'llvmlite' not in sys.modules, 'numba was imported'\n"
        "from harness.envs import crafter_worldgen\n"
        "from test_crafter_worldgen import _world_after\n"
        f"worlds = [_world_after(seed, crafter_worldgen.generate_world) for seed in {seeds}]\n"
        "print(json.dumps([[w[0].hex(), w[1], w[2][0].hex(), w[2][1:]] for w in worlds]))\n"
        "import numba\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO / "tests", capture_output=True, text=True,
                          timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    theirs = [_world_after(seed, worldgen.generate_world) for seed in seeds]
    expected = [[w[0].hex(), [[kind, list(place)] for kind, place in w[1]], w[2][0].hex(), list(w[2][1:])]
                for w in theirs]  # fmt: skip
    assert json.loads(done.stdout) == expected
