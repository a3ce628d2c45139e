"""An episode's bookkeeping stays the same size however long it runs (issue 25): the message
dedup window, the prefix-reuse trie's bound, and the dedup key's exactness."""

import json
import math
import os
import random
import shutil
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.agent.resume import DISCARDED_FILE, keep_steps, read_recorded
from harness.envs.gamelog import observation_digest
from harness.memory.replay import final_memory
from harness.runs import prefix, trace
from harness.runs.derive import derived_totals
from harness.runs.jobs import EpisodeSpec
from harness.runs.layout import MESSAGES_FILE, STEPS_FILE, read_jsonl
from harness.runs.prefix import PrefixCache
from harness.runs.read import MessageIndex, read_messages, read_steps
from harness.runs.recent import Recent
from harness.runs.salvage import clear_for_relaunch, drop_torn_line, salvaged_episode
from harness.runs.trace import MessageStore


def test_recent_forgets_the_least_recently_used_entry() -> None:
    recent: Recent[str, int] = Recent(2)
    recent["a"], recent["b"] = 1, 2
    assert recent.get("a") == 1  # "a" is now the most recent
    recent["c"] = 3
    assert "b" not in recent and recent.get("a") == 1 and recent.get("c") == 3 and len(recent) == 2


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8,
)


@given(st.lists(st.dictionaries(st.sampled_from(["role", "content", "name"]), json_values, max_size=3), max_size=6))
def test_two_messages_share_an_id_exactly_when_their_json_is_the_same(messages: list[dict[str, Any]]) -> None:
    # NaN and None differ though orjson writes both as null; 1 and True, 1 and 1.0 differ
    def canonical(message: dict[str, Any]) -> str:
        return json.dumps(message, sort_keys=True, ensure_ascii=False)

    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        store = MessageStore(Path(folder) / "messages.jsonl")
        ids = store.ids_of(messages)
        store.close()
        for first, first_id in zip(messages, ids):
            for second, second_id in zip(messages, ids):
                assert (first_id == second_id) == (canonical(first) == canonical(second))


def test_nan_and_null_are_told_apart() -> None:
    assert trace._key({"content": math.nan}) != trace._key({"content": None})
    assert trace._key({"content": 1}) != trace._key({"content": True}) != trace._key({"content": 1.0})


def test_a_message_unused_past_the_window_is_stored_again_verbatim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace, "DEDUP_WINDOW", 3)
    monkeypatch.setattr(trace, "KNOWN_TEXTS", 2)
    path = tmp_path / "messages.jsonl"
    store = MessageStore(path)
    first = {"role": "user", "content": "step 0"}
    assert store.ids_of([first]) == ["m0"]
    assert store.ids_of([first, {"role": "user", "content": "step 1"}]) == ["m0", "m1"]  # within the window
    for index in range(2, 6):
        store.ids_of([{"role": "user", "content": f"step {index}"}])
    assert store.ids_of([first]) == ["m6"]  # forgotten: a new id, the message stored again verbatim
    store.close()
    lines = list(read_jsonl(path))
    assert [line["id"] for line in lines] == [f"m{index}" for index in range(7)]
    assert lines[6] == {"id": "m6", **first}
    reopened = MessageStore(path)  # a resumed worker goes on numbering after the last id
    assert reopened.ids_of([{"role": "user", "content": "new"}]) == ["m7"]
    reopened.close()


class _Unremembered(MessageStore):
    """The store without its memory of plain texts: every message serialized and hashed."""

    def _message_id(self, message: dict[str, Any]) -> str:
        return self._id("m", message, message)


@pytest.mark.parametrize(("window", "kept"), [(5, 3), (3, 6)])
@pytest.mark.parametrize("copy_texts", [False, True])
def test_a_text_seen_lately_gets_the_id_serializing_it_again_would(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: int, kept: int, copy_texts: bool) -> None:  # fmt: skip
    """MessageStore knows a plain message by its role and text (no hashing again); the ids it
    gives must be those it gives when every message is keyed afresh, window and forgetting
    included, whether a text comes again as the same object or as a new copy."""
    monkeypatch.setattr(trace, "DEDUP_WINDOW", window)
    monkeypatch.setattr(trace, "KNOWN_TEXTS", kept)
    texts = [f"observation {index}" for index in range(8)]
    rng = random.Random(1)
    calls = [[{"role": rng.choice(["user", "assistant"]), "content": rng.choice(texts)} for _ in range(rng.randrange(1, 6))]
             for _ in range(300)]  # fmt: skip
    remembered, reference = MessageStore(tmp_path / "remembered.jsonl"), _Unremembered(tmp_path / "reference.jsonl")
    for call in calls:
        sent = [{"role": message["role"], "content": "".join(list(message["content"]))} for message in call] \
            if copy_texts else call  # fmt: skip
        assert remembered.ids_of(sent) == reference.ids_of(call)
    remembered.close()
    reference.close()
    assert (tmp_path / "remembered.jsonl").read_bytes() == (tmp_path / "reference.jsonl").read_bytes()


def _nodes(way: prefix._Way) -> int:
    """The places reachable from `way`'s start (its own and its children's)."""
    return len(way.units) + sum(_nodes(child) for child in way.children.values())


def test_the_trie_of_a_sliding_history_over_repeating_observations_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """BALROG's naive agent: instructions, then the last 16 observations. Over observations that
    repeat (a hero searching in place), the ways branch at every depth: a bound per place does
    not bound the trie. The trie keeps NODES places, and the latest prompt is always whole."""
    monkeypatch.setattr(prefix, "NODES", 300)
    pick = random.Random(7)
    texts = {"i": {"role": "user", "content": "rules"}} | {f"o{n}": {"role": "user", "content": f"obs {n}"} for n in range(6)}
    cache = PrefixCache(texts.__getitem__)
    history: list[str] = []
    for _ in range(3000):
        history = [*history, f"o{pick.randrange(6)}"][-16:]
        cache.add(["i", *history])
        assert len(cache) <= 300 and _nodes(cache.root) == len(cache)  # every kept place is reachable
        assert cache.add(["i", *history]) == 1.0  # the latest prompt is remembered whole
    assert len(cache) == 300


def test_a_forgotten_continuation_is_read_again_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefix, "NODES", 4)
    texts = {name: {"role": "user", "content": name * 10} for name in ("a", "b", "c", "d", "x")}
    cache = PrefixCache(texts.__getitem__)
    for start in ("a", "b", "c"):
        cache.add([start, "x"])
    assert cache.add(["c", "x"]) == 1.0  # remembered
    assert cache.add(["b", "x"]) == 1.0
    assert cache.add(["a", "x"]) < 0.5  # "a" was the least recent of three ways: forgotten


SOURCE = Path("leaderboards/runs/smoke-automem-seed/episodes/crafter/crafter/0")


def _long_trace(tmp_path: Path, steps: int = 1500) -> Path:
    """An episode folder of `steps` of the stored seed agent's steps over again, each with a
    30 KB observation (45 MB of trace)."""
    folder = tmp_path / "episode"
    folder.mkdir()
    shutil.copy(SOURCE / MESSAGES_FILE, folder / MESSAGES_FILE)
    templates = [json.loads(line) for line in (SOURCE / STEPS_FILE).read_text().splitlines()]
    with open(folder / STEPS_FILE, "w") as out:
        for index in range(steps):
            step = templates[index % len(templates)] | {"index": index, "observation": f"{index} " + "x" * 30_000}
            out.write(json.dumps(step) + "\n")
    return folder


def test_a_long_trace_is_sealed_a_step_at_a_time(tmp_path: Path) -> None:
    """The host's salvage of a dead worker's episode reads its steps one at a time: 45 MB of
    trace is summed up within a few MB, to the totals the whole list gives."""
    folder = _long_trace(tmp_path)
    expected = derived_totals(read_steps(folder), read_messages(folder))
    tracemalloc.start()
    try:
        record = salvaged_episode(EpisodeSpec(env="crafter", task="crafter", seed=0, max_steps=2000, episode_dir=str(folder)),
                                  "worker", "killed")  # fmt: skip
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"{peak / 2**20:.1f} MB held to salvage 45 MB of steps"
    assert expected["steps"] == 1500 and expected["memory"]["writes"] > 0 and expected["tokens"]["prompt_reusable"] > 0
    assert {key: record[key] for key in expected} == expected
    assert record["final_observation"].startswith("1499 ")
    assert sorted(p.name for p in (folder / "memory").rglob("*") if p.is_file()) == sorted(
        Path(path).name for path in final_memory(s.memory_ops for s in read_steps(folder)))


def test_a_resumed_worker_reads_a_long_trace_a_step_at_a_time(tmp_path: Path) -> None:
    """A worker continuing a long episode adds up its kept steps as it reads them: the actions
    to replay, each observation's digest, and the totals, within a few MB; the unplayed last
    step is kept aside and steps.jsonl cut after the last played one."""
    folder = _long_trace(tmp_path)
    with open(folder / STEPS_FILE, "a") as out:
        out.write(json.dumps(json.loads((SOURCE / STEPS_FILE).read_text().splitlines()[0]) | {"index": 1500, "action": None}) + "\n")
    steps = read_steps(folder)
    expected = derived_totals(steps[:1500], read_messages(folder))
    tracemalloc.start()
    try:
        recorded = read_recorded(folder)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"{peak / 2**20:.1f} MB held to read 45 MB of steps"
    assert recorded is not None and recorded.count == 1500 and len(recorded.discarded) == 1
    assert recorded.actions == [step.action for step in steps[:1500]]
    assert recorded.digests == [observation_digest(step.observation) for step in steps[:1500]]
    # every total but prefix reuse, which the worker leaves to the host's seal
    assert recorded.totals.derived() == expected | {"tokens": expected["tokens"] | {"prompt_reusable": None}}
    keep_steps(folder, recorded)
    assert read_steps(folder) == steps[:1500]
    assert (folder / DISCARDED_FILE).read_text().count("\n") == 1


def test_a_message_index_reads_what_read_messages_reads(tmp_path: Path) -> None:
    source = SOURCE
    messages = read_messages(source)
    with MessageIndex(source) as index:
        assert len(index) == len(messages) > 10
        assert all(index.get(key) == value for key, value in messages.items())
        assert index.get("no such id") is None
    (tmp_path / MESSAGES_FILE).write_text((source / MESSAGES_FILE).read_text() + '{"id": "torn", "role": "us')
    with MessageIndex(tmp_path) as torn:
        assert "torn" not in torn and len(torn) == len(messages)


@given(st.binary(max_size=300), st.sampled_from([0, 1, 70_000]))
def test_a_torn_last_line_is_cut_reading_only_the_tail(data: bytes, padding: int) -> None:
    """What drop_torn_line leaves is the file up to its last newline (all of it if it ends in one),
    with lines longer than the chunk it reads back by."""
    data = b"a" * padding + data
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "steps.jsonl"
        path.write_bytes(data)
        drop_torn_line(path)
        assert path.read_bytes() == (data if not data or data.endswith(b"\n") else data[: data.rfind(b"\n") + 1])


def test_a_folder_launched_again_loses_its_links_and_torn_line_and_nothing_is_written_through_a_link(tmp_path: Path) -> None:
    """Before a relaunch the host reads no step (a long trace would cost seconds): it cuts a torn
    line, removes a memory folder left as a link, and never writes through a linked trace."""
    victim, folder = tmp_path / "victim", tmp_path / "episode"
    victim.mkdir()
    (victim / "kept.txt").write_text("the host's own\n")
    folder.mkdir()
    (folder / STEPS_FILE).write_text('{"index": 0}\n{"index": 1, "obs')
    (folder / "memory").symlink_to(victim)
    clear_for_relaunch(folder)
    assert (folder / STEPS_FILE).read_text() == '{"index": 0}\n' and not os.path.lexists(folder / "memory")
    assert (victim / "kept.txt").read_text() == "the host's own\n"
    linked = tmp_path / "linked"
    linked.mkdir()
    (victim / "trace.jsonl").write_text("torn")
    (linked / STEPS_FILE).symlink_to(victim / "trace.jsonl")
    clear_for_relaunch(linked)
    assert (victim / "trace.jsonl").read_text() == "torn"


@given(st.text(max_size=12), st.dictionaries(st.sampled_from(["role", "content", "tools"]), st.text(max_size=20)))
def test_a_message_line_id_read_without_parsing_is_its_json_id_or_left_to_json(known: str, rest: dict[str, str]) -> None:
    from harness.runs.read import _leading_id

    line = (json.dumps({"id": known, **rest}, ensure_ascii=False) + "\n").encode()
    assert _leading_id(line) in (None, known)
    assert _leading_id(f'{{"id": "{known}'.encode()) is None  # torn inside the id


@given(st.text(alphabet="ab", max_size=12), st.text(alphabet="ab", max_size=12), st.text(alphabet="abc", max_size=6))
def test_the_common_start_is_the_longest_shared_start(first: str, second: str, shared: str) -> None:
    a, b = shared + first, shared + second
    expected = next((index for index, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    assert prefix._common_start(a, b) == expected


class _Place:
    __slots__ = ("children", "parent", "unit", "last")

    def __init__(self, parent: "_Place | None", unit: str) -> None:
        self.children: dict[str, _Place] = {}
        self.parent, self.unit, self.last = parent, unit, None


class _OnePlacePerNode:
    """The trie as first written (an object per place, each in the order of use): what
    PrefixCache's ways must give, forgetting included."""

    def __init__(self, lookup: Any, nodes: int) -> None:
        self.lookup, self.nodes, self.root = lookup, nodes, _Place(None, "")
        self.recency: dict[_Place, None] = {}

    def size(self, unit: str) -> int:
        return len(prefix._text(unit, self.lookup))

    def add(self, units: list[str]) -> float:
        total = sum(self.size(unit) for unit in units)
        node, reused, index, path = self.root, 0, 0, []
        while index < len(units) and (child := node.children.get(units[index])) is not None:
            reused += self.size(units[index])
            node.last = units[index]
            node, index = child, index + 1
            path.append(child)
        if index < len(units) and node.last is not None:
            reused += prefix._common_start(prefix._text(units[index], self.lookup), prefix._text(node.last, self.lookup))
        for unit in units[index:]:
            node.last = unit
            child = node.children[unit] = _Place(node, unit)
            path.append(child)
            node = child
        for place in reversed(path):
            self.recency.pop(place, None)
            self.recency[place] = None
        while len(self.recency) > self.nodes:
            forgotten = next(iter(self.recency))
            del self.recency[forgotten]
            del forgotten.parent.children[forgotten.unit]  # type: ignore[union-attr]
        return reused / total if total else 0.0


@settings(max_examples=400, deadline=None)
@given(st.integers(2, 40), st.lists(st.lists(st.sampled_from("abcd"), min_size=1, max_size=9), min_size=1, max_size=80))
def test_the_trie_in_rows_measures_what_a_trie_of_single_places_measures(nodes: int, prompts: list[list[str]]) -> None:
    texts = {unit: {"role": "user", "content": f"{unit} says {ord(unit) % 7}" * (ord(unit) % 3 + 1)} for unit in "abcdef"}
    reference = _OnePlacePerNode(texts.__getitem__, nodes)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(prefix, "NODES", nodes)
        cache = PrefixCache(texts.__getitem__)
        for units in prompts:
            assert cache.add(list(units)) == reference.add(list(units))
            assert len(cache) == len(reference.recency) == _nodes(cache.root)
