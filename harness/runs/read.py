"""Reading a run directory through the typed records (runs.records): the one read API.

    from harness.runs import read_run
    run = read_run("runs/20261125-...")
    run.record.model.name, run.results.complete
    for episode in run.episodes(): episode.progression, run.steps(episode)[0].llm_calls

A file of another major schema version is refused (SchemaVersionError) with what to do;
a file without a version predates versioning and is read as 1.0.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from pydantic import ValidationError

from harness.runs.layout import (
    EPISODE_FILE,
    MESSAGES_FILE,
    STEPS_FILE,
    VERIFICATION_FILE,
    RunDir,
    iter_jsonl,
    read_jsonl,
)
from harness.runs.records import (
    SCHEMA_MAJOR,
    EpisodeRecord,
    LLMCall,
    Record,
    Results,
    RunRecord,
    StepRecord,
    VerificationRecord,
)

R = TypeVar("R", bound=Record)


class RecordError(ValueError):
    """A run file that cannot be read as its record (malformed, or missing keys)."""


class SchemaVersionError(RecordError):
    """A run file written with another major version of the schema."""


def check_version(data: dict[str, Any], source: Path | str) -> None:
    version = str(data.get("schema_version") or "1.0")
    try:
        major = int(version.split(".")[0])
    except ValueError:
        raise SchemaVersionError(f"{source}: schema_version {version!r} is not MAJOR.MINOR") from None
    if major != SCHEMA_MAJOR:
        raise SchemaVersionError(
            f"{source} has schema version {version}; this harness reads {SCHEMA_MAJOR}.x. Read it with "
            "the harness that wrote it (run.json names its harness_version), or re-run the evaluation."
        )


def parse_record(model: type[R], data: Any, source: Path | str) -> R:
    if not isinstance(data, dict):
        raise RecordError(f"{source}: expected a JSON object, found {type(data).__name__}")
    check_version(data, source)
    if "schema_version" in model.model_fields and not data.get("schema_version"):
        data = {**data, "schema_version": "1.0"}  # written before records carried a version
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise RecordError(f"{source} is not a valid {model.__name__}: {error}") from error


def read_record(model: type[R], path: Path) -> R:
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise RecordError(f"{path} is not JSON: {error}") from error
    return parse_record(model, data, path)


def read_episode(folder: Path) -> EpisodeRecord:
    return read_record(EpisodeRecord, Path(folder) / EPISODE_FILE)


def read_steps(folder: Path) -> list[StepRecord]:
    """Every whole step of an episode folder (a torn last line is skipped)."""
    return list(iter_steps(folder))


def iter_steps(folder: Path) -> Iterator[StepRecord]:
    """The whole steps of an episode folder one at a time (what a 100,000-step episode is read
    with: its records are never all in memory)."""
    path = Path(folder) / STEPS_FILE
    for number, line in enumerate(iter_jsonl(path), 1):
        yield parse_record(StepRecord, line, f"{path}:{number}")


def read_messages(folder: Path) -> dict[str, dict[str, Any]]:
    """id -> message (role, content, and tool calls or tool call id where it has them), and
    id -> {"tools": [...]} for tool lists: the messages.jsonl of one episode folder."""
    return {r["id"]: {k: v for k, v in r.items() if k != "id"} for r in read_jsonl(Path(folder) / MESSAGES_FILE)}


_ID_START = b'{"id": "'


def _leading_id(line: bytes) -> str | None:
    """The id of a messages.jsonl line as MessageStore writes it (`{"id": "m12", ...}`), read
    without parsing the message (the whole file's JSON cost a tenth of a seal), or None."""
    if not line.startswith(_ID_START):
        return None
    end = line.find(b'"', len(_ID_START))
    known = line[len(_ID_START):end]
    return known.decode() if end > 0 and known.isalnum() and line[end + 1:end + 2] in (b",", b"}") else None


class MessageIndex:
    """messages.jsonl of one episode folder looked up by id without holding it: where each
    record starts in the file, each read when asked for (read_messages' mapping, for long
    episodes; the file must not change while it is used)."""

    RECENT = 512  # messages kept parsed: a sliding history asks for each of them at many steps

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / MESSAGES_FILE
        self._offsets: dict[str, int] = {}
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._file: BinaryIO | None = None
        if not self.path.is_file():
            return
        with open(self.path, "rb") as lines:
            offset = 0
            for line in lines:
                known = _leading_id(line)
                if known is None or not line.endswith(b"\n"):  # not as the store writes it: read it whole
                    try:
                        record = json.loads(line)
                    except ValueError:
                        break  # a torn last line, as read_jsonl
                    if not isinstance(record, dict):
                        break
                    known = str(record.get("id"))
                self._offsets[known] = offset  # a repeated id: the last, as read_messages
                offset += len(line)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._offsets

    def __len__(self) -> int:
        return len(self._offsets)

    def get(self, message_id: str) -> dict[str, Any] | None:
        """The message (shared with later lookups of the same id: read it, do not change it)."""
        known = self._recent.get(message_id)
        if known is not None:
            self._recent.move_to_end(message_id)
            return known
        offset = self._offsets.get(message_id)
        if offset is None:
            return None
        if self._file is None:
            self._file = open(self.path, "rb")  # noqa: SIM115  # kept open for the lookups to come: close()
        self._file.seek(offset)
        try:
            record = json.loads(self._file.readline())
        except ValueError:
            return None  # a line broken after its id: as a line never written
        if not isinstance(record, dict):
            return None
        message = {k: v for k, v in record.items() if k != "id"}
        self._recent[message_id] = message
        if len(self._recent) > self.RECENT:
            self._recent.popitem(last=False)
        return message

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> MessageIndex:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def call_input(call: LLMCall, messages: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The verbatim messages of one recorded chat call."""
    return [messages[message_id] for message_id in call.input["messages"]]


def call_tools(call: LLMCall, messages: dict[str, dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The tools one recorded chat call offered the model (None: no tools)."""
    return messages[call.tools]["tools"] if call.tools else None


class Run:
    """One run directory, read through its typed records (each file read once, on first use)."""

    def __init__(self, root: Path | str) -> None:
        self.dir = RunDir(Path(root))
        if not self.dir.run_file.exists():
            raise FileNotFoundError(f"{root} is not a run directory (no run.json)")

    @property
    def root(self) -> Path:
        return self.dir.root

    @cached_property
    def record(self) -> RunRecord:
        return read_record(RunRecord, self.dir.run_file)

    @cached_property
    def results(self) -> Results | None:
        """results.json, or None if the run has not aggregated its episodes yet."""
        return read_record(Results, self.dir.results_file) if self.dir.results_file.exists() else None

    @cached_property
    def verification(self) -> VerificationRecord | None:
        """verification.json, or None if `harness verify` has not checked the run."""
        path = self.root / VERIFICATION_FILE
        return read_record(VerificationRecord, path) if path.exists() else None

    def episode_folders(self) -> list[Path]:
        """Folders holding an episode.json, sorted (env/task/seed)."""
        return sorted(p.parent for p in (self.root / "episodes").glob(f"*/*/*/{EPISODE_FILE}"))

    def episodes(self) -> list[EpisodeRecord]:
        return [read_episode(folder) for folder in self.episode_folders()]

    def episode_folder(self, episode: EpisodeRecord) -> Path:
        return self.dir.episode_dir(episode.env, episode.task, episode.seed)

    def steps(self, episode: EpisodeRecord) -> list[StepRecord]:
        return read_steps(self.episode_folder(episode))

    def messages(self, episode: EpisodeRecord) -> dict[str, dict[str, str]]:
        return read_messages(self.episode_folder(episode))


def read_run(root: Path | str) -> Run:
    """The run directory at `root`, read through the typed records."""
    return Run(root)
