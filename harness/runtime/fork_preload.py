"""Imported first in the fork server (runtime.local.PRELOAD): its children start without
re-running the launching program's main module.

multiprocessing prepares every forked child as a spawned one: it runs the parent's `__main__`
again (as `__mp_main__`) before calling the target. For the `harness` console script that
imports the whole CLI, some 0.23 s of CPU in every worker (measured: 64 workers spent 15 s
of a 2-core machine on it). The fork server's `'__main__'` preload that should spare it never
runs in Python 3.11 (its `main_path` key is not in the preparation data it asks for). Every
target the fork server runs is a function of the harness, importable by name, so nothing in a
child needs the parent's main module: this process's `spawn.prepare`, which each child calls,
leaves it out.
"""

from __future__ import annotations

from collections.abc import Mapping
from multiprocessing import spawn
from typing import Any

MAIN_KEYS = ("init_main_from_path", "init_main_from_name")
_prepare = spawn.prepare


def prepare_without_main(data: Mapping[str, Any]) -> None:
    _prepare({key: value for key, value in data.items() if key not in MAIN_KEYS})


spawn.prepare = prepare_without_main
