"""An episode folder streamed piece by piece (runtime.stream): the copy on the run's side is the
worker's folder, line by line, and nothing it is sent can write outside the episode folder."""

import mmap
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.runtime.stream import Change, FolderTracker, StreamRefused, apply_changes, safe_target


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_records_travel_as_whole_new_lines_and_a_line_being_written_waits(tmp_path: Path) -> None:
    source, copy = tmp_path / "worker", tmp_path / "run"
    source.mkdir()
    tracker = FolderTracker(source)
    (source / "steps.jsonl").write_bytes(b'{"index": 0}\n{"index": 1')
    first = tracker.changes()
    assert [(c.kind, c.data) for c in first] == [("write", b'{"index": 0}\n')]
    apply_changes(copy, first)
    with open(source / "steps.jsonl", "ab") as stream:
        stream.write(b"}\n")
    second = tracker.changes()
    assert [(c.kind, c.offset, c.data) for c in second] == [("append", 13, b'{"index": 1}\n')]
    apply_changes(copy, second)
    assert _files(copy) == _files(source)
    assert tracker.changes() == []  # nothing new: nothing sent


def test_a_rewritten_record_a_changed_mapped_file_and_a_deleted_file_are_sent(tmp_path: Path) -> None:
    source, copy = tmp_path / "worker", tmp_path / "run"
    (source / "memory").mkdir(parents=True)
    (source / "steps.jsonl").write_bytes(b"a\nb\nc\n")
    (source / "memory" / "notes.md").write_text("one")
    (source / "phase").write_bytes(b"\0" * 24)
    tracker = FolderTracker(source)
    apply_changes(copy, tracker.changes())
    replacement = source / "steps.tmp"
    replacement.write_bytes(b"a\n")  # a resume cuts the trace to its kept steps (a new file)
    os.replace(replacement, source / "steps.jsonl")
    (source / "memory" / "notes.md").unlink()
    with open(source / "phase", "r+b") as stream, mmap.mmap(stream.fileno(), 24) as mapped:
        mapped[:5] = b"model"  # written through a map, as the phase marker does: the mtime need not move
    apply_changes(copy, tracker.changes())
    assert _files(copy) == _files(source)


def test_links_the_tasks_job_file_and_a_forged_launch_record_are_not_sent(tmp_path: Path) -> None:
    source = tmp_path / "worker"
    source.mkdir()
    (tmp_path / "secret").write_text("host file")
    (source / "leak").symlink_to(tmp_path / "secret")
    (source / "job.json").write_text("{}")
    (source / "launches.jsonl").write_text('{"launch": 1, "outcome": "forged"}\n')  # the run's record, not the worker's
    (source / "game.jsonl").write_text("{}\n")
    assert [change.path for change in FolderTracker(source).changes()] == ["game.jsonl"]


def test_a_folder_from_the_run_directory_sends_only_what_changes_afterwards(tmp_path: Path) -> None:
    source = tmp_path / "worker"
    source.mkdir()
    (source / "steps.jsonl").write_bytes(b"a\n")
    tracker = FolderTracker(source, already_sent=True)
    assert tracker.changes() == []
    with open(source / "steps.jsonl", "ab") as stream:
        stream.write(b"b\n")
    assert [(c.kind, c.offset) for c in tracker.changes()] == [("append", 2)]


@pytest.mark.parametrize("path", ["../outside", "/etc/passwd", "memory/../../outside", "", ".", "a\\..\\b"])
def test_a_path_outside_the_episode_folder_is_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(StreamRefused):
        apply_changes(tmp_path / "run", [Change(path, "write", b"x")])
    assert not (tmp_path / "outside").exists()


def test_a_link_in_the_way_and_a_gap_in_the_stream_are_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (run / "memory").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StreamRefused, match="link"):
        apply_changes(run, [Change("memory/notes.md", "write", b"x")])
    assert not list((tmp_path / "elsewhere").iterdir())
    (run / "steps.jsonl").write_bytes(b"a\n")
    with pytest.raises(StreamRefused, match="missing"):
        apply_changes(run, [Change("steps.jsonl", "append", b"c\n", offset=4)])


OPERATIONS = st.lists(st.tuples(st.sampled_from(["append", "rewrite", "delete", "look"]),
                                st.sampled_from(["steps.jsonl", "memory/a.md", "memory/deep/b.md", "worker.log"]),
                                st.binary(max_size=40)), max_size=30)  # fmt: skip


@given(OPERATIONS)
@settings(max_examples=60, deadline=None)
def test_any_sequence_of_writes_arrives_as_the_workers_folder(tmp_path_factory: pytest.TempPathFactory,
                                                              operations: list[tuple[str, str, bytes]]) -> None:  # fmt: skip
    root = tmp_path_factory.mktemp("stream")
    source, copy = root / "worker", root / "run"
    source.mkdir()
    tracker = FolderTracker(source)
    for operation, name, data in operations:
        path = source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if operation == "append":
            with open(path, "ab") as stream:
                stream.write(data + b"\n")
        elif operation == "rewrite":
            path.write_bytes(data + b"\n")
        elif operation == "delete":
            path.unlink(missing_ok=True)
        else:
            apply_changes(copy, tracker.changes())
    apply_changes(copy, tracker.changes())
    assert _files(copy) == _files(source) if copy.exists() else not _files(source)


def test_safe_target_names_the_file_inside(tmp_path: Path) -> None:
    assert safe_target(tmp_path, "memory/./notes.md") == tmp_path / "memory" / "notes.md"
