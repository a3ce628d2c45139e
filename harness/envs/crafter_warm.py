"""Imported by the fork server of a run that plays Crafter (runtime.local.preload_for): loads
crafter, its textures and the compiled world generation once, so every forked game has them.

Where the noise loop was compiled ahead of time (envs.crafter_noise), opensimplex is imported
first with numba hidden: crafter imports it, and it would import numba (0.3 s, 60 MB that every
fork maps again) only to compile the noise that the ahead-of-time loop computes here."""

from harness.envs.crafter_noise import import_opensimplex_without_numba

import_opensimplex_without_numba()

from harness.envs.crafter import warm  # noqa: E402  (crafter imports opensimplex: after the line above)

warm()
