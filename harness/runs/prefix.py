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


class _Way:
    """Places in a row that no prompt has left at a place between them: one per unit of
    `units`. Only the place after the last unit may branch (`children`, by their first unit)."""

    __slots__ = ("units", "children", "parent", "last")

    def __init__(self, parent: _Way | None, units: list[str]) -> None:
        self.units, self.parent = units, parent
        self.children: dict[str, _Way] = {}
        # the unit taken last from the place after the last unit (the previous prompt that went
        # this way); from a place inside, it is always the next unit of the row
        self.last: str | None = None

    def last_from(self, offset: int) -> str | None:
        """The unit taken last from the place after units[offset] (-1: the way's start)."""
        return self.units[offset + 1] if offset + 1 < len(self.units) else self.last


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
    """The prompts of one episode so far, as a trie of their units (tool list, messages), its
    places kept in rows (_Way): a sliding history adds a row of 30 places at every step, made
    as one object, not 30."""

    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self.root = _Way(None, [])
        # every way but the root, least recently used first. A prompt's places are touched from
        # its last unit back to the first, so a place is always more recent than the places after
        # it: within a way the last place is the least recent, the least recent way is a leaf,
        # and forgetting places from its end never cuts a way in two.
        self._recency: OrderedDict[_Way, None] = OrderedDict()
        self._places = 0
        self._lengths: dict[str, int] = {}  # emptied when it passes KNOWN_LENGTHS (cheaper than an LRU per unit)
        # the texts of this prompt's units measured anew, and of the previous prompt's: a step's
        # observation is compared with the previous step's, both just measured
        self._texts: dict[str, str] = {}
        self._previous: dict[str, str] = {}

    def __len__(self) -> int:
        """The places kept (the root apart)."""
        return self._places

    def _length(self, unit: str) -> int:
        length = self._lengths.get(unit)
        if length is None:
            if len(self._lengths) >= KNOWN_LENGTHS:
                self._lengths.clear()
            text = self._texts[unit] = _text(unit, self.lookup)
            length = self._lengths[unit] = len(text)
        return length

    def _text_of(self, unit: str) -> str:
        return self._texts.get(unit) or self._previous.get(unit) or _text(unit, self.lookup)

    def add(self, units: list[str]) -> float:
        """The share (0-1) of this prompt's characters that repeat an earlier prompt's start;
        the prompt is then remembered."""
        self._previous, self._texts = self._texts, {}
        lengths, length_of = self._lengths, self._length
        sizes = [lengths.get(unit) or length_of(unit) for unit in units]
        total = sum(sizes)
        way, offset, index, reused = self.root, -1, 0, 0  # at the place after way.units[offset]
        touched: list[_Way] = []
        while index < len(units):
            if offset + 1 < len(way.units):  # inside a way: one place follows
                if way.units[offset + 1] != units[index]:
                    break
                offset += 1
            else:
                child = way.children.get(units[index])
                if child is None:
                    break
                way.last = units[index]
                way, offset = child, 0
                touched.append(way)
            reused += sizes[index]
            index += 1
        if index < len(units) and (last := way.last_from(offset)) is not None:
            # the first differing unit: its common start with the latest one seen here (a step's
            # observation with the previous step's; comparing with every one would cost n^2)
            reused += _common_start(self._text_of(units[index]), self._text_of(last))
        if offset + 1 < len(way.units):  # the prompt leaves (or ends) inside a way: cut it there
            head = self._split(way, offset + 1)
            if touched and touched[-1] is way:
                touched[-1] = head
            way = head
        recency = self._recency
        if index < len(units):
            added = way.children[units[index]] = _Way(way, units[index:])
            way.last = units[index]
            recency[added] = None
            self._places += len(added.units)
        for passed in reversed(touched):  # the deepest first, as their places are touched
            recency.move_to_end(passed)
        self._forget()
        return reused / total if total else 0.0

    def _split(self, way: _Way, kept: int) -> _Way:
        """Cut `way` after its first `kept` places: a new way holds them (touched now, it goes to
        the recent end when the caller moves it), and `way` keeps the rest, its children and its
        place in the order of use."""
        head = _Way(way.parent, way.units[:kept])
        assert way.parent is not None  # the root has no units to cut
        way.parent.children[head.units[0]] = head
        head.children[way.units[kept]] = way
        head.last = way.units[kept]
        way.units, way.parent = way.units[kept:], head
        self._recency[head] = None
        return head

    def _forget(self) -> None:
        """Forget the least recently used places past NODES, from the end of the least recent way."""
        recency = self._recency
        while self._places > NODES:
            way = next(iter(recency))
            cut = min(self._places - NODES, len(way.units))
            self._places -= cut
            if cut == len(way.units):
                del recency[way]
                del way.parent.children[way.units[0]]  # type: ignore[union-attr]  # only the root has no parent
            else:
                way.last = way.units[len(way.units) - cut]  # the way it went, as a forgotten place's parent keeps it
                way.units = way.units[: len(way.units) - cut]


def prompt_units(tools: str | None, message_ids: Iterable[str]) -> list[str]:
    """What the server read, in order: the tool list's id, then the message ids."""
    return ([tools] if tools else []) + list(message_ids)
