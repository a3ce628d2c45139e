"""Meta-LLM replies: JSON objects are found with the standard decoder, whatever surrounds them."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.tracks.meta import MetaReplyError, parse_json_object


def test_a_closing_brace_inside_a_string_does_not_end_the_object() -> None:
    reply = 'My decision: {"rationale": "keep } in mind", "epochs": 2} as asked.'
    assert parse_json_object(reply) == {"rationale": "keep } in mind", "epochs": 2}


def test_a_fenced_block_is_preferred_over_an_earlier_bare_brace() -> None:
    reply = 'Use {braces} sparingly.\n```json\n{"rank": 8, "note": "{not a brace}"}\n```\n'
    assert parse_json_object(reply) == {"rank": 8, "note": "{not a brace}"}


def test_text_with_braces_before_the_object_is_skipped() -> None:
    assert parse_json_object('set {x} then {"a": {"b": [1, 2]}}') == {"a": {"b": [1, 2]}}


def test_a_reply_without_an_object_is_a_named_failure() -> None:
    with pytest.raises(MetaReplyError, match="no JSON object"):
        parse_json_object("I would train for two epochs [1, 2].")


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                           max_leaves=8)  # fmt: skip


@given(st.dictionaries(st.text(), json_values, max_size=4), st.text().filter(lambda t: "{" not in t), st.text())
def test_any_object_is_recovered_from_prose_around_it(value: dict[str, object], before: str, after: str) -> None:
    assert parse_json_object(before + json.dumps(value) + after) == value
