"""An episode folder streamed from where its worker runs to the run directory, as it is written.

The worker's side (`FolderTracker`) looks at the folder every fraction of a second and says
what changed since it last looked: the new whole lines of an append-only record (`*.jsonl`,
the worker's log), or the whole of any other file that changed (the memory files, the phase),
or a file that is gone. The run's side (`apply_changes`) writes those changes into the episode
folder of the run directory, where the scheduler, its watchdog and a later resume read them as
they read a local worker's. A change is applied only inside the folder: a path that climbs out
or is absolute is refused, no link is followed or created, and the worker's links are never
sent. Changes are applied in the order they were made, so an append lands at the offset the
worker wrote it at (a gap or an overlap means the stream lost a piece and is refused).
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path

from harness.runs.launches import LAUNCHES_FILE
from harness.runs.layout import atomic_write_bytes

APPENDED_SUFFIXES = (".jsonl", ".log")  # written only at their end: sent line by line
SMALL_FILE_BYTES = 4096  # small files are compared by content (the phase file is written through a map: no mtime)
TAIL_BYTES = 4096  # how much of an appended file's end is compared before sending only what follows
# the task's own copy of the job (paths of the remote node), and the launches the run records on its
# side: a worker's file of that name never overwrites the run's
NOT_STREAMED = ("job.json", LAUNCHES_FILE)


class StreamRefused(Exception):
    """A change that cannot be applied inside the episode folder as it stands."""


@dataclass(frozen=True)
class Change:
    path: str  # relative, POSIX
    kind: str  # "append" | "write" | "delete"
    data: bytes = b""
    offset: int = 0  # where an append starts


@dataclass
class _Sent:
    inode: int
    size: int  # bytes sent (for an appended file: up to its last whole line)
    mtime_ns: int
    content: bytes | None = None  # a small file's bytes as sent
    tail: bytes = b""  # an appended file's last bytes as sent (a file rewritten in place no longer ends so)


class FolderTracker:
    """The worker's side: what changed in `folder` since the last call of `changes()`."""

    def __init__(self, folder: Path, already_sent: bool = False) -> None:
        self.folder = Path(folder)
        self._sent: dict[str, _Sent] = {}
        if already_sent:  # the folder came from the run directory: only what changes afterwards is sent
            for relative, status in self._files().items():
                path = self.folder / relative
                self._sent[relative] = _Sent(status.st_ino, status.st_size, status.st_mtime_ns, self._small(relative, status),
                                             _read(path, max(0, status.st_size - TAIL_BYTES), status.st_size))  # fmt: skip

    def _files(self) -> dict[str, os.stat_result]:
        found: dict[str, os.stat_result] = {}
        for directory, subdirectories, files in os.walk(self.folder, followlinks=False):
            base = Path(directory)
            subdirectories[:] = [d for d in subdirectories if d != "__pycache__" and not (base / d).is_symlink()]
            for name in files:
                path = base / name
                relative = path.relative_to(self.folder).as_posix()
                if relative in NOT_STREAMED:
                    continue
                try:
                    status = path.lstat()
                except OSError:
                    continue  # gone between the listing and now: the next look sends it as deleted
                if os.path.isfile(path) and not path.is_symlink():
                    found[relative] = status
        return found

    def _small(self, relative: str, status: os.stat_result) -> bytes | None:
        if status.st_size > SMALL_FILE_BYTES or relative.endswith(APPENDED_SUFFIXES):
            return None
        try:
            return (self.folder / relative).read_bytes()
        except OSError:
            return None

    def changes(self) -> list[Change]:
        changes: list[Change] = []
        files = self._files()
        for relative in sorted(set(self._sent) - set(files)):
            del self._sent[relative]
            changes.append(Change(relative, "delete"))
        for relative, status in sorted(files.items()):
            change = self._change(relative, status)
            if change is not None:
                changes.append(change)
        return changes

    def _change(self, relative: str, status: os.stat_result) -> Change | None:
        sent = self._sent.get(relative)
        path = self.folder / relative
        if relative.endswith(APPENDED_SUFFIXES):
            if sent is not None and sent.inode == status.st_ino and status.st_size >= sent.size:
                data = _read(path, sent.size - len(sent.tail), status.st_size)
                if data.startswith(sent.tail):  # else it was rewritten in place: sent whole below
                    new = data[len(sent.tail):]
                    whole = new[: new.rfind(b"\n") + 1]  # a line still being written waits for the next look
                    if not whole:
                        return None
                    offset = sent.size
                    sent.size += len(whole)
                    sent.tail = (sent.tail + whole)[-TAIL_BYTES:]
                    return Change(relative, "append", whole, offset)
            data = _read(path, 0, status.st_size)  # new, or rewritten (a resume cut it)
            whole = data[: data.rfind(b"\n") + 1]
            self._sent[relative] = _Sent(status.st_ino, len(whole), status.st_mtime_ns, tail=whole[-TAIL_BYTES:])
            return Change(relative, "write", whole)
        small = self._small(relative, status)
        if sent is not None and (sent.inode, sent.size, sent.mtime_ns) == (status.st_ino, status.st_size, status.st_mtime_ns) \
                and (small is None or small == sent.content):
            return None
        data = small if small is not None else _read(path, 0, status.st_size)
        self._sent[relative] = _Sent(status.st_ino, status.st_size, status.st_mtime_ns, small)
        return Change(relative, "write", data)


def _read(path: Path, start: int, end: int) -> bytes:
    try:
        with open(path, "rb") as stream:
            stream.seek(start)
            return stream.read(max(0, end - start))
    except OSError:
        return b""


def safe_target(folder: Path, relative: str) -> Path:
    """The file `relative` names inside `folder`; refused if it climbs out, is absolute, or
    passes through a link."""
    normal = posixpath.normpath(relative)
    if not relative or relative.startswith("/") or normal.startswith("..") or normal in (".", "") or "\\" in relative:
        raise StreamRefused(f"the path {relative!r} is not inside the episode folder")
    target = Path(folder, *normal.split("/"))
    for parent in [target, *target.parents]:
        if parent == folder:
            break
        if parent.is_symlink():
            raise StreamRefused(f"the path {relative!r} passes through a link")
    return target


def apply_changes(folder: Path, changes: list[Change]) -> int:
    """Write `changes` into `folder` (the run's episode folder); returns the bytes written."""
    written = 0
    for change in changes:
        target = safe_target(folder, change.path)
        if change.kind == "delete":
            target.unlink(missing_ok=True)
        elif change.kind == "write":
            atomic_write_bytes(target, change.data)  # replaces, never follows
        elif change.kind == "append":
            _append(target, change)
        else:
            raise StreamRefused(f"unknown change {change.kind!r} of {change.path!r}")
        written += len(change.data)
    return written


def _append(target: Path, change: Change) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
    with os.fdopen(descriptor, "ab") as stream:
        size = os.fstat(descriptor).st_size
        if size != change.offset:
            raise StreamRefused(f"{change.path}: an append at byte {change.offset} onto {size} bytes (a piece of "
                                f"the stream is missing)")  # fmt: skip
        stream.write(change.data)
