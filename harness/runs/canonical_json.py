"""A scaffold state's canonical JSON text, `json.dumps(value, sort_keys=True)` to the byte,
made without encoding again the texts it saw at the last steps.

The episode loop writes a scaffold's state at every step it changes and records the SHA-256 of
this text (agent.state_slots), so the text's form is fixed by the stored runs. A state is mostly
the same strings from one step to the next (BALROG's naive agent: a 16-step history of ~30 KB
that moves by one observation); `json.dumps` escaped all of it again each step (0.17 ms). Here
exact dicts with string keys, lists and tuples are walked in Python, a string's escaped form is
kept by its value, and everything else is left to `json.dumps` itself.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii  # what json.dumps uses for a str (ensure_ascii)
from typing import Any

KEPT_STRINGS = 1024  # escaped strings kept; the memo starts again past it (a bounded episode memory)
SHORT = 32  # strings shorter than this are escaped again (a lookup would cost about as much)


class CanonicalJson:
    """`text(value) == json.dumps(value, sort_keys=True)`, with strings' escaped forms kept."""

    def __init__(self) -> None:
        self._escaped: dict[str, str] = {}

    def text(self, value: Any) -> str:
        try:
            return self._encode(value)
        except RecursionError:  # a cycle or a deep nest: json.dumps says which, as it always did
            return json.dumps(value, sort_keys=True)

    def _encode(self, value: Any) -> str:
        kind = type(value)
        if kind is str:
            return self._string(value)
        if kind is dict:
            if not value:
                return "{}"
            if not all(type(key) is str for key in value):  # keys json turns into text: its own rules
                return json.dumps(value, sort_keys=True)
            return "{" + ", ".join(f"{self._string(key)}: {self._encode(value[key])}" for key in sorted(value)) + "}"
        if kind is list or kind is tuple:
            return "[" + ", ".join([self._encode(item) for item in value]) + "]"
        return json.dumps(value, sort_keys=True)  # numbers, true/false/null, subclasses, the unserializable

    def _string(self, value: str) -> str:
        if len(value) < SHORT:
            return encode_basestring_ascii(value)
        escaped = self._escaped.get(value)
        if escaped is None:
            if len(self._escaped) >= KEPT_STRINGS:
                self._escaped.clear()
            escaped = self._escaped[value] = encode_basestring_ascii(value)
        return escaped
