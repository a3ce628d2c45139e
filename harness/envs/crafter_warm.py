"""Imported by the fork server of a run that plays Crafter (runtime.local.preload_for): loads
the compiled world generation and crafter's textures once, so every forked game has them."""

from harness.envs.crafter import warm

warm()
