"""Crafter's noise loop compiled ahead of time: its worlds made without numba at run time.

The world generation (envs.crafter_worldgen) computes its noise fields in one numba-compiled
loop over opensimplex's own `_noise3` (envs.crafter_noise_loop). Compiled just in time, each
process that makes a world first imports numba and loads numba's cached machine code: in the
fork server of a Crafter run, 0.9 s of its 1.2 s start (every episode's first call waits for it)
and 120 MB of its 175 MB, which every fork then maps again (4.5 ms of CPU per fork, against 1.8
for NetHack's server).

`python -m harness.envs.crafter_noise` (run by `make`'s install) compiles the same loop ahead of
time with numba's `pycc` into an extension module beside this file, for a generic x86-64 (no
instruction the build machine has and another may lack; tests/test_crafter_noise.py checks the
binary). The same compiler on the same code gives the same values (the tests compare every field
with the just-in-time loop's, and the worlds with crafter's own). A stamp beside it names the
opensimplex source it was built from: a module built from another is not loaded, and the
just-in-time loop serves instead.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

MODULE = "_crafter_noise"
HERE = Path(__file__).resolve().parent
SIGNATURE = "f8[:,:](f8[:], f8[:], f8, i8[:], i8[:])"  # (xs, ys, z, perm, gradient index) -> field[x, y]
_loaded: Any = None  # the compiled function once looked for; False: none usable here


def stamp_path(directory: Path = HERE) -> Path:
    return directory / f"{MODULE}.json"


def source_stamp() -> dict[str, Any] | None:
    """What the compiled module depends on: the digest of opensimplex's noise code (found without
    importing it: importing opensimplex imports numba) and this Python's version; None without
    opensimplex."""
    spec = importlib.util.find_spec("opensimplex")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    digest = hashlib.sha256()
    for name in ("internals.py", "constants.py"):
        source = package / name
        if not source.exists():
            return None
        digest.update(source.read_bytes())
    return {"opensimplex_sha256": digest.hexdigest(), "python": list(sys.version_info[:2])}


def build(directory: Path = HERE) -> Path:
    """Compile the noise loop ahead of time into `directory` (numba and a C compiler needed
    here, neither at run time); returns the stamp written beside the module."""
    from harness.envs.crafter_noise_loop import noise_field

    pycc: Any = importlib.import_module("numba.pycc")  # untyped, and deprecated by numba (kept while it exists)

    stamp = source_stamp()
    if stamp is None:
        raise RuntimeError("opensimplex is not installed: nothing to compile")
    compiler = pycc.CC(MODULE)
    compiler.output_dir = str(directory)
    compiler.target_cpu = ""  # LLVM's generic x86-64, never the build machine's own CPU
    compiler.export("noise_field", SIGNATURE)(noise_field)
    compiler.compile()
    stamp_path(directory).write_text(json.dumps(stamp, indent=1) + "\n")
    return stamp_path(directory)


def load() -> Callable[..., Any] | None:
    """The compiled loop, when a module built from the installed opensimplex is here; else None."""
    global _loaded
    if _loaded is None:
        _loaded = False
        try:
            built_from = json.loads(stamp_path().read_text())
        except (OSError, ValueError):
            return None
        if built_from != source_stamp():
            return None
        try:
            _loaded = importlib.import_module(f"harness.envs.{MODULE}").noise_field
        except (ImportError, RuntimeError):  # built against another numpy's C interface
            return None
    return _loaded or None


def import_opensimplex_without_numba() -> bool:
    """Import opensimplex with numba hidden, where the compiled loop makes numba unneeded: its
    noise functions are then plain Python, which crafter's own generator would use, but this
    process's worlds are made by the compiled loop. A scaffold forked later can still import
    numba. Returns whether it did (not when opensimplex or numba is already imported)."""
    if "opensimplex" in sys.modules or "numba" in sys.modules or load() is None:
        return False
    sys.modules["numba"] = None  # type: ignore[assignment]  # `import numba` now raises ImportError
    try:
        importlib.import_module("opensimplex")
    finally:
        del sys.modules["numba"]
    return True


def main() -> int:
    try:
        stamp = build()
    except Exception as error:  # no compiler, or a numba without pycc: worlds still come, just in time
        print(f"NOTE: Crafter's noise loop was not compiled ahead of time ({type(error).__name__}: {error}); "
              "Crafter runs will import numba and compile it just in time (slower start)", file=sys.stderr)  # fmt: skip
        return 0
    print(f"compiled Crafter's noise loop ahead of time: {stamp.parent / MODULE}*.so ({stamp.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
