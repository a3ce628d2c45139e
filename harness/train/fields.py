"""Refusing unknown keys in the configs the meta-LLM writes (a typo must not be ignored)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any


def check_fields(config_class: type, data: dict[str, Any], what: str) -> None:
    """Raise ValueError naming the unknown keys of `data` and the known ones."""
    known = {f.name for f in fields(config_class)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown {what} {sorted(unknown)}; known: {sorted(known)}")
