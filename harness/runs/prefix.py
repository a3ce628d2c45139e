"""Prefix-cache reuse: how much of each prompt repeats the start of an earlier prompt.

A server with automatic prefix caching (vLLM, llama.cpp's slot cache) reads again only what
follows the longest start a prompt shares with one it has seen. For each chat call of an
episode this measures that share on the recorded input, in the order a server reads it: the
tool list (when tools were offered), then the messages. Whole messages are compared by their
ids (messages.jsonl stores each distinct message once); at the first message that differs, its
common start with the latest message seen at that place counts too. The share is taken in characters and applied to the
call's prompt tokens: an estimate of the tokens a cache could serve (templates and tokenizers
differ; characters are what the record holds). The first call of an episode reuses nothing:
each episode is measured on its own, as if the cache were empty when it started. Like a
server's cache it forgets: the trie keeps NODES places, and when a prompt adds more, the places
used least recently go first (a sliding history adds a new way at every step, and a history over
repeating observations branches at every depth; kept all, a 100,000-step episode would hold
millions of nodes). A forgotten way is read again in full.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

NODES = 8192  # places the trie keeps (about 3 MB): the latest hundreds of prompts
KNOWN_LENGTHS = 4096


class _Node:
    """A place in the trie: the prompts that went this way so far, by their next unit."""

    __slots__ = ("children", "parent", "unit", "last")

    def __init__(self, parent: _Node | None, unit: str) -> None:
        self.children: dict[str, _Node] = {}
        self.parent, self.unit = parent, unit
        self.last: str | None = None  # the child added last (the previous prompt that went this way)


Lookup = Callable[[str], dict[str, Any]]  # a message or tool-list id -> its stored record


def _text(unit: str, lookup: Lookup) -> str:
    return json.dumps({k: v for k, v in lookup(unit).items() if k != "id"}, sort_keys=True, ensure_ascii=False)


def _common_start(a: str, b: str) -> int:
    """The length of the start `a` and `b` share: a binary search over slices compared in C (a
    character loop in Python cost 0.2 ms a step on NetHack's observations)."""
    low, high = 0, min(len(a), len(b))  # a[:low] == b[:low]; the shared start is at most high
    while low < high:
        middle = (low + high + 1) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle - 1
    return low


class PrefixCache:
    """The prompts of one episode so far, as a trie of their units (tool list, messages)."""

    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self.root = _Node(None, "")
        # every place but the root, least recently used first. A prompt's places are touched from
        # its last unit back to the first, so a place is always more recent than the places after
        # it: the least recent place is a leaf, and forgetting it never cuts a way in two.
        self._recency: OrderedDict[_Node, None] = OrderedDict()
        self._lengths: dict[str, int] = {}  # emptied when it passes KNOWN_LENGTHS (cheaper than an LRU per unit)

    def __len__(self) -> int:
        """The places kept (the root apart)."""
        return len(self._recency)

    def _length(self, unit: str) -> int:
        length = self._lengths.get(unit)
        if length is None:
            if len(self._lengths) >= KNOWN_LENGTHS:
                self._lengths.clear()
            length = self._lengths[unit] = len(_text(unit, self.lookup))
        return length

    def add(self, units: list[str]) -> float:
        """The share (0-1) of this prompt's characters that repeat an earlier prompt's start;
        the prompt is then remembered."""
        lengths, length_of = self._lengths, self._length
        sizes = [lengths.get(unit) or length_of(unit) for unit in units]
        total = sum(sizes)
        node, reused, index, path = self.root, 0, 0, []
        while index < len(units) and (child := node.children.get(units[index])) is not None:
            reused += sizes[index]
            node.last = units[index]
            node = child
            path.append(child)
            index += 1
        if index < len(units) and node.last is not None:
            # the first differing unit: its common start with the latest one seen here (a step's
            # observation with the previous step's; comparing with every one would cost n^2)
            reused += _common_start(_text(units[index], self.lookup), _text(node.last, self.lookup))
        recency = self._recency
        added = []
        for unit in units[index:]:
            node.last = unit
            child = node.children[unit] = _Node(node, unit)
            added.append(child)
            node = child
        # touched from the last unit back to the first: the new places (not yet in the order:
        # each goes to its end), then the places the prompt went through (moved to its end)
        for place in reversed(added):
            recency[place] = None
        for place in reversed(path):
            recency.move_to_end(place)
        while len(recency) > NODES:
            forgotten, _ = recency.popitem(last=False)
            del forgotten.parent.children[forgotten.unit]  # type: ignore[union-attr]  # only the root has no parent
        return reused / total if total else 0.0


def prompt_units(tools: str | None, message_ids: Iterable[str]) -> list[str]:
    """What the server read, in order: the tool list's id, then the message ids."""
    return ([tools] if tools else []) + list(message_ids)
