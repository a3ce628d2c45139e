"""The loop that computes one of Crafter's noise fields: opensimplex's own `_noise3` at every
(x, y) of a grid. Plain Python here; numba compiles it, either just in time (envs.crafter_worldgen)
or ahead of time (envs.crafter_noise). Importing this module imports numba (through opensimplex)."""

import numpy as np
from opensimplex.internals import _noise3


def noise_field(xs: np.ndarray, ys: np.ndarray, z: float, perm: np.ndarray, grad: np.ndarray) -> np.ndarray:
    out = np.empty((xs.size, ys.size))
    for i in range(xs.size):
        for j in range(ys.size):
            out[i, j] = _noise3(xs[i], ys[j], z, perm, grad)
    return out
