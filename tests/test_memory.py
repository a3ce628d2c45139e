"""The memory sandbox: operations, path rules, limits, recording, metrics."""

import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.memory import (
    Memory,
    MemoryAccessError,
    MemoryLimitError,
    MemoryLimits,
    MemoryOp,
    memory_metrics,
    sandbox,
)


@pytest.fixture()
def memory(tmp_path: Path) -> Memory:
    return Memory(tmp_path / "memory")


def test_append_write_read_list_search_delete(memory: Memory) -> None:
    memory.append("map/level1.md", "(3,4) door\n")
    memory.append("map/level1.md", "(5,6) stairs down\n")
    memory.write("goals.md", "find the stairs\n")
    assert memory.read("map/level1.md") == "(3,4) door\n(5,6) stairs down\n"
    assert memory.list() == ["goals.md", "map/level1.md"]
    assert memory.list("map") == ["map/level1.md"]
    assert memory.search("STAIRS") == ["goals.md:1: find the stairs", "map/level1.md:2: (5,6) stairs down"]
    assert memory.search("(5,6", "map") == ["map/level1.md:2: (5,6) stairs down"]  # not a regex: literal
    memory.write("goals.md", "explore\n")
    assert memory.read("goals.md") == "explore\n"
    memory.delete("goals.md")
    assert memory.list() == ["map/level1.md"]
    assert memory.total_chars == len("(3,4) door\n(5,6) stairs down\n")


def test_every_operation_is_recorded_with_sizes(memory: Memory) -> None:
    memory.append("a.md", "hello")
    memory.read("a.md")
    memory.search("hell")
    ops = [op.to_json() for op in memory.take_ops()]
    assert [op["op"] for op in ops] == ["append", "read", "search"]
    assert ops[0]["chars_written"] == 5 and ops[1]["chars_read"] == 5
    assert ops[2]["pattern"] == "hell" and all(op["ok"] for op in ops)
    assert memory.take_ops() == []


@pytest.mark.parametrize("path", ["../escape.md", "/etc/passwd", "a/../../b", "..", "notes/../../x", "C:\\x"])
def test_escaping_paths_are_refused_and_recorded(memory: Memory, path: str) -> None:
    with pytest.raises(MemoryAccessError):
        memory.write(path, "x")
    op = memory.take_ops()[0]
    assert not op.ok and "MemoryAccessError" in (op.error or "")
    assert not (memory.root.parent / "escape.md").exists()


def test_symlinks_are_refused_even_inside(memory: Memory, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    os.symlink(outside, memory.root / "link")
    with pytest.raises(MemoryAccessError, match="symlink"):
        memory.read("link/secret.txt")
    with pytest.raises(MemoryAccessError):
        memory.append("link/new.txt", "x")
    assert not (outside / "new.txt").exists()


def test_size_limits_are_enforced(tmp_path: Path) -> None:
    memory = Memory(tmp_path / "m", MemoryLimits(max_file_chars=10, max_total_chars=15, max_files=2))
    memory.write("a", "0123456789")
    with pytest.raises(MemoryLimitError, match="per file"):
        memory.append("a", "x")
    memory.write("b", "01234")
    with pytest.raises(MemoryLimitError, match="limit is 15"):
        memory.append("b", "5")
    with pytest.raises(MemoryLimitError, match="maximum of 2 files"):
        memory.write("c", "")
    assert memory.read("a") == "0123456789" and memory.total_chars == 15


def test_reading_a_missing_file_names_the_existing_ones(memory: Memory) -> None:
    memory.write("plan.md", "x")
    with pytest.raises(FileNotFoundError, match="plan.md"):
        memory.read("map.md")


def test_existing_directory_content_is_counted(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (root / "old.md").write_text("12345")
    assert Memory(root).total_chars == 5


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", ".", "/", "\\", "\0", ":", "~", " ", "..", "../", "link/"]), max_size=12).map("".join))
def test_no_path_ever_writes_outside_the_memory_directory(tmp_path_factory: pytest.TempPathFactory, path: str) -> None:
    base = tmp_path_factory.mktemp("h")
    memory = Memory(base / "memory")
    os.symlink(base, memory.root / "link")  # a trap: a symlink back out of the directory
    try:
        memory.write(path, "x")
    except (MemoryAccessError, IsADirectoryError, FileNotFoundError, NotADirectoryError, MemoryLimitError, OSError):
        pass
    written = [p for p in base.rglob("*") if p.is_file()]
    assert all(memory.root in p.resolve().parents for p in written)


def test_metrics_ratio_and_consult_before_write() -> None:
    steps = [
        [_op("search"), _op("append")],  # consulted write
        [_op("append"), _op("read")],  # write before the read
        [_op("write", ok=False)],  # refused: not a write
        [],
    ]
    metrics = memory_metrics(steps, steps=4, chars_final=200, files_final=2)
    assert metrics["writes"] == 2 and metrics["searches"] == 1 and metrics["reads"] == 1
    assert metrics["write_to_search_ratio"] == 1.0
    assert metrics["consult_before_write"] == 0.5
    assert metrics["growth_chars_per_step"] == 50.0
    assert metrics["refused_ops"] == 1


def test_metrics_without_consultations_leave_the_ratio_undefined() -> None:
    metrics = memory_metrics([[_op("append")]], steps=1, chars_final=3, files_final=1)
    assert metrics["write_to_search_ratio"] is None


def test_the_directory_can_be_rebuilt_from_the_recorded_operations(memory: Memory) -> None:
    from harness.memory.replay import final_memory, memory_states

    steps = []
    for index in range(3):
        memory.append("log.md", f"step {index}\n")
        if index == 1:
            memory.write("./plan.md", "go east")
        if index == 2:
            memory.delete("plan.md")
        steps.append(memory.take_ops())
    states = list(memory_states(steps))
    assert states[1] == {"log.md": "step 0\nstep 1\n", "plan.md": "go east"}
    assert states[-1] == final_memory(steps) == {"log.md": memory.read("log.md")}


def _op(kind: str, ok: bool = True) -> MemoryOp:
    return MemoryOp(kind, "notes.md", None, 0, 0, ok, None)


def test_one_definition_of_consulting_before_writing() -> None:
    from harness.memory.metrics import step_memory_counts

    mixed = step_memory_counts([_op("append"), _op("search"), _op("append"), _op("read", ok=False)])
    assert (mixed.writes, mixed.writes_after_consultation, mixed.refused) == (2, 1, 1)
    assert not mixed.consults_before_writing
    assert step_memory_counts([_op("search"), _op("write")]).consults_before_writing
    assert step_memory_counts([_op("read")]).consults_before_writing  # consulted, wrote nothing
    assert not step_memory_counts([_op("search", ok=False), _op("append")]).consults_before_writing


def test_envs_average_each_episodes_ratio_instead_of_pooling_counts() -> None:
    from harness.runs.records import EpisodeRecord
    from harness.runs.results import env_summary

    def episode(writes: int, searches: int, steps: int, invalid: int) -> EpisodeRecord:
        return EpisodeRecord.model_validate({
            "env": "minihack", "task": "MazeWalk-9x9", "seed": 0, "status": "truncated", "progression": 0.0,
            "steps": steps, "max_steps": steps, "reward_total": 0.0, "invalid_actions": invalid,
            "memory": {"chars_final": 0, "files_final": 0, "growth_chars_per_step": 1.0, "writes": writes,
                       "searches": searches, "reads": 0, "write_to_search_ratio": writes / searches,
                       "consult_before_write": 1.0, "refused_ops": 0},
            "tokens": {"prompt": 0, "completion": 0}, "time_s": {}})  # fmt: skip

    summary = env_summary([episode(1, 1, 10, 5), episode(30, 10, 1000, 0)])
    assert summary["write_to_search_ratio"] == 2.0  # pooled counts would give 31/11
    assert summary["invalid_action_rate"] == 0.25  # pooled would give 5/1010


def test_a_refused_write_creates_no_folder(tmp_path: Path) -> None:
    memory = Memory(tmp_path / "memory", MemoryLimits(max_file_chars=10, max_files=1))
    for number in range(50):
        with pytest.raises(MemoryLimitError):
            memory.append(f"deep/{number}/nested/notes.md", "x" * 11)  # over the size per file
    memory.append("one.md", "ok")
    with pytest.raises(MemoryLimitError):
        memory.write("more/two.md", "ok")  # over the number of files
    assert sorted(p.relative_to(tmp_path / "memory").as_posix() for p in (tmp_path / "memory").rglob("*")) == ["one.md"]


@given(st.text(alphabet="./ab", min_size=1, max_size=12))
def test_a_rebuild_never_applies_a_path_the_sandbox_would_refuse(path: str) -> None:
    from harness.memory.replay import final_memory, safe_relative
    from harness.runs.records import MemoryOpRecord

    op = MemoryOpRecord(op="append", path=path, ok=True, text="x", chars_written=1)
    rebuilt = final_memory([[op]])
    relative = safe_relative(path)
    assert list(rebuilt) == ([relative] if relative else [])
    assert all(".." not in part.split("/") and not part.startswith("/") for part in rebuilt)


@given(st.text(alphabet="aAbB\u00e9\u00c9 \n\r\x0b\x85\u2028:", max_size=60), st.text(alphabet="aAbB\u00e9\u00c9 \n:(", max_size=4))
def test_a_search_finds_the_lines_a_line_by_line_search_finds(text: str, pattern: str) -> None:
    """Plain text is looked for in the whole file at once; the lines found (numbers, texts,
    order) are those a case-insensitive search of each line finds."""
    try:
        matcher = re.compile(pattern, re.IGNORECASE)
    except re.error:
        matcher = re.compile(re.escape(pattern), re.IGNORECASE)
    expected = [(number, line) for number, line in enumerate(text.splitlines(), 1) if matcher.search(line)]
    compiled, one_line_text = sandbox._compiled(pattern)
    assert list(sandbox._matching_lines(compiled, one_line_text, text)) == expected
