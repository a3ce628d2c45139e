"""A state's canonical text is json.dumps(value, sort_keys=True) to the byte (its SHA-256 is
what stored runs recorded), with or without its strings' escaped forms kept from earlier."""

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.runs import canonical_json
from harness.runs.canonical_json import CanonicalJson

texts = st.text(max_size=40) | st.sampled_from(["", "é", "\u2028", "\ud800", "a\"b\\c\n", "x" * 40, "snow ☃ " * 6])
keys = texts | st.integers() | st.floats(allow_nan=False) | st.booleans() | st.none()
leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | texts
values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.tuples(children, children)
    | st.dictionaries(texts, children, max_size=4) | st.dictionaries(keys, children, max_size=3),
    max_leaves=20,
)


@given(st.lists(values, min_size=1, max_size=4))
def test_the_text_is_json_dumps_sorted_even_from_strings_seen_before(states: list[Any]) -> None:
    encoder = CanonicalJson()
    for state in states + states:  # the second time, every long string comes from the memo
        try:
            expected = json.dumps(state, sort_keys=True)
        except TypeError:  # keys json cannot sort (an int beside a str): the same error here
            with pytest.raises(TypeError):
                encoder.text(state)
            continue
        assert encoder.text(state) == expected


def test_what_json_refuses_is_refused_alike() -> None:
    encoder = CanonicalJson()
    with pytest.raises(TypeError, match="not JSON serializable"):
        encoder.text({"events": [{"content": object()}]})
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        encoder.text({"a": loop})


def test_the_memo_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(canonical_json, "KEPT_STRINGS", 3)
    encoder = CanonicalJson()
    for index in range(10):
        state = {"events": [f"{'observation ' * 4}{index}-{part}" for part in range(2)]}
        assert encoder.text(state) == json.dumps(state, sort_keys=True)
        assert len(encoder._escaped) <= 3
