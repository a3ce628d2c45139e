"""Submissions: reading and checking `submission.yaml`, loading the scaffold class.

A broken submission is refused before any episode starts, with the file, the line and the
fix. Importing scaffold code happens only in a worker process (`python -m
harness.agent.submission check DIR` prints the verdict as JSON): submitted and generated code
never runs inside the harness process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.agent.answers import ANSWER_RULES
from harness.agent.api import Scaffold
from harness.models.features import FEATURES
from harness.models.router import check_routine

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

SUBMISSION_FILE = "submission.yaml"
REQUIRED_FIELDS = ("name", "description", "authors", "scaffold")


class SubmissionError(ValueError):
    """A submission that cannot be run; the message names the file, the line and the fix."""

    def __init__(self, file: Path | str, line: int | None, problem: str, fix: str) -> None:
        self.file, self.line, self.problem, self.fix = str(file), line, problem, fix
        where = f"{file}:{line}" if line else str(file)
        super().__init__(f"{where}: {problem}\n  fix: {fix}")


@dataclass
class ModelSpec:
    base: str | None = None
    adapter: Path | None = None
    adapter_routines: tuple[str, ...] = ("log", "recall")
    uses: tuple[str, ...] = FEATURES  # what the scaffold asks of the model server (models.features)
    max_tokens: int | None = None  # the most tokens one answer of the scaffold asks for (checked against the server)
    none: bool = False  # `model: none`: the scaffold makes no model call, and its runs have no model server


@dataclass
class Submission:
    directory: Path
    name: str
    description: str
    authors: list[str]
    scaffold_file: str
    scaffold_class: str
    model: ModelSpec = field(default_factory=ModelSpec)
    extra: dict[str, Any] = field(default_factory=dict)  # other keys, e.g. `parent`
    answers: str = "forgiving"  # how the harness reads the scaffold's answer (agent.episode.resolve_action)

    @property
    def content_hash(self) -> str:
        return content_hash(self.directory)


def content_hash(directory: Path) -> str:
    """sha256 over the submission's files (relative paths and bytes), caches excluded."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        if "__pycache__" in relative.split("/") or relative.endswith(".pyc"):
            continue
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return "sha256:" + digest.hexdigest()


def _line_of(node: yaml.Node, key: str) -> int | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            if key_node.value == key:
                return int(key_node.start_mark.line) + 1
    return None


def read_submission(directory: str | Path) -> Submission:
    """Parse and check submission.yaml (no code is imported here)."""
    directory = Path(directory).resolve()
    config_path = directory / SUBMISSION_FILE
    if not directory.is_dir():
        raise SubmissionError(directory, None, "no such submission folder",
                              "give the folder that holds submission.yaml, e.g. submissions/automem-seed")  # fmt: skip
    if not config_path.is_file():
        raise SubmissionError(config_path, None, "submission.yaml is missing",
                              "add submission.yaml with name, description, authors and scaffold: scaffold.py:Agent")  # fmt: skip
    text = config_path.read_text()
    try:
        # libyaml's parser where present: the pure-Python one cost every worker 24 ms at start
        node = yaml.compose(text, Loader=_LOADER)
        data = yaml.load(text, Loader=_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise SubmissionError(config_path, mark.line + 1 if mark else None, f"not valid YAML: {error}",
                              "fix the YAML syntax (indentation, colons, quotes)") from error  # fmt: skip
    if not isinstance(data, dict) or node is None:
        raise SubmissionError(config_path, 1, "submission.yaml must be a mapping of fields",
                              "write fields as `name: my-agent` lines")  # fmt: skip
    for key in REQUIRED_FIELDS:
        if key not in data or data[key] in (None, ""):
            raise SubmissionError(config_path, _line_of(node, key), f"required field '{key}' is missing or empty",
                                  f"add `{key}: ...` (required fields: {', '.join(REQUIRED_FIELDS)})")  # fmt: skip
    scaffold = str(data["scaffold"])
    file_name, _, class_name = scaffold.partition(":")
    line = _line_of(node, "scaffold")
    if not class_name or not file_name.endswith(".py"):
        raise SubmissionError(config_path, line, f"'scaffold: {scaffold}' does not name FILE.py:Class",
                              "write it as `scaffold: scaffold.py:Agent`")  # fmt: skip
    scaffold_path = (directory / file_name).resolve()
    if directory not in scaffold_path.parents:
        raise SubmissionError(config_path, line, f"'{file_name}' lies outside the submission folder",
                              "keep the scaffold file inside the submission folder")  # fmt: skip
    if not scaffold_path.is_file():
        found = ", ".join(sorted(p.name for p in directory.glob("*.py"))) or "none"
        raise SubmissionError(config_path, line, f"'scaffold' names {file_name}, which does not exist (Python files here: {found})",
                              f"create {file_name} or point `scaffold:` at the right file")  # fmt: skip
    authors = data["authors"]
    authors = [str(a) for a in authors] if isinstance(authors, list) else [str(authors)]
    model = ModelSpec()
    if data.get("model") is not None:
        model = _read_model(data["model"], directory, config_path, _line_of(node, "model"))
    answers = data.get("answers", "forgiving")
    if answers not in ANSWER_RULES:
        raise SubmissionError(config_path, _line_of(node, "answers"), f"answers: {answers!r} is not one of {', '.join(ANSWER_RULES)}",
                              "leave it out (forgiving: trimmed, any letter case) or write `answers: exact`")  # fmt: skip
    extra = {k: v for k, v in data.items() if k not in (*REQUIRED_FIELDS, "model", "answers")}
    return Submission(directory, str(data["name"]), str(data["description"]), authors,
                      file_name, class_name, model, extra, answers)  # fmt: skip


def _read_model(raw: Any, directory: Path, config_path: Path, line: int | None) -> ModelSpec:
    if raw == "none":
        return ModelSpec(uses=(), none=True)
    if not isinstance(raw, dict):
        raise SubmissionError(config_path, line, "'model' must be a mapping, or none",
                              "write `model: {base: ..., adapter: adapter/, adapter_routines: [log, recall], uses: [tools, choices]}`")  # fmt: skip
    adapter = None
    if raw.get("adapter"):
        adapter = (directory / str(raw["adapter"])).resolve()
        if not (adapter / "adapter_config.json").is_file():
            raise SubmissionError(config_path, line, f"model.adapter {raw['adapter']} holds no adapter_config.json",
                                  "point model.adapter at a PEFT LoRA folder (adapter_config.json + adapter_model.safetensors)")  # fmt: skip
    routines = tuple(raw.get("adapter_routines") or ("log", "recall"))
    try:
        for routine in routines:
            check_routine(routine)
    except ValueError as error:
        raise SubmissionError(config_path, line, f"model.adapter_routines {list(routines)}: {error}",
                              "name the routines your scaffold passes to chat(routine=...), e.g. [log, recall]") from None  # fmt: skip
    if "act" in routines:
        raise SubmissionError(config_path, line, "model.adapter_routines lists act, the world action",
                              "leave act to the base model (two-model inference); list the memory routines only")  # fmt: skip
    declared = raw.get("adapter_hash")
    if declared and adapter is not None:
        from harness.models.adapters import adapter_hash

        actual = adapter_hash(adapter)
        if actual != declared:
            raise SubmissionError(config_path, line, f"model.adapter_hash says {declared}, but the adapter's files hash to {actual}",
                                  "ship the adapter that was evaluated, or remove adapter_hash if the change is intended")  # fmt: skip
    uses = raw.get("uses", list(FEATURES))
    if not isinstance(uses, list) or any(feature not in FEATURES for feature in uses):
        raise SubmissionError(config_path, line, f"model.uses {uses!r} names something other than {', '.join(FEATURES)}",
                              "list what the scaffold asks of the server, e.g. `uses: [tools, choices]`, or `uses: []`")  # fmt: skip
    max_tokens = raw.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise SubmissionError(config_path, line, f"model.max_tokens {max_tokens!r} is not a positive whole number",
                              "give the most tokens one answer asks for, e.g. `max_tokens: 8192`, or leave it out")  # fmt: skip
    return ModelSpec(base=raw.get("base"), adapter=adapter, adapter_routines=routines, uses=tuple(uses),
                     max_tokens=max_tokens)  # fmt: skip


def load_scaffold_class(submission: Submission) -> type[Scaffold]:
    """Import the scaffold file and return its class (call only in a worker process)."""
    path = submission.directory / submission.scaffold_file
    if str(submission.directory) not in sys.path:
        sys.path.insert(0, str(submission.directory))  # multi-file submissions import siblings
    module_name = f"submission_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SubmissionError(path, None, "cannot be imported", "make it a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        raise SubmissionError(error.filename or path, error.lineno, f"syntax error: {error.msg}",
                              "fix the syntax at that line") from error  # fmt: skip
    except Exception as error:
        frame = traceback.extract_tb(error.__traceback__)[-1]
        raise SubmissionError(frame.filename, frame.lineno, f"importing the scaffold failed: {type(error).__name__}: {error}",
                              "make the module importable (missing imports or names?)") from error  # fmt: skip
    scaffold_class = getattr(module, submission.scaffold_class, None)
    if scaffold_class is None:
        classes = [name for name, value in vars(module).items() if inspect.isclass(value) and value.__module__ == module_name]
        raise SubmissionError(path, None, f"defines no class {submission.scaffold_class}; classes found: {', '.join(classes) or 'none'}",
                              f"rename the class or set `scaffold: {submission.scaffold_file}:<ClassName>`")  # fmt: skip
    if not (inspect.isclass(scaffold_class) and issubclass(scaffold_class, Scaffold)):
        line = inspect.getsourcelines(scaffold_class)[1] if inspect.isclass(scaffold_class) else None
        raise SubmissionError(path, line, f"{submission.scaffold_class} does not inherit from harness.agent.Scaffold",
                              f"write `class {submission.scaffold_class}(Scaffold):` with `from harness.agent import Scaffold`")  # fmt: skip
    if scaffold_class.step is Scaffold.step:
        line = inspect.getsourcelines(scaffold_class)[1]
        raise SubmissionError(path, line, f"{submission.scaffold_class} does not implement step(self, step)",
                              "add `def step(self, step: Step) -> str:` returning one of step.actions")  # fmt: skip
    return scaffold_class


# Runs function(*args) in a child process: (exit code, None if ended at timeout_s; stdout; stderr).
ChildRunner = Callable[..., tuple[int | None, str, str]]


def check_submission(directory: str | Path, timeout_s: float = 120.0, sandboxed: bool = False,
                     run_in: ChildRunner | None = None) -> Submission:  # fmt: skip
    """Read the config here, import the scaffold in a child process (`sandboxed`: in an agent
    container, for code nobody reviewed; `run_in`: the local runtime's `run_forked`, a child of
    its fork server, which this starts for the workers to come); raise SubmissionError."""
    submission = read_submission(directory)
    if sandboxed:
        from harness.runtime.docker import check_in_container

        stdout, stderr = check_in_container(submission.directory, timeout_s)
    elif run_in is not None:
        code, stdout, stderr = run_in(_check_main, str(submission.directory), timeout_s=timeout_s)
        if code is None:
            raise _import_timeout(submission, timeout_s)
    else:
        try:
            completed = subprocess.run(
                [sys.executable, "-m", "harness.agent.submission", "check", str(submission.directory)],
                capture_output=True, text=True, timeout=timeout_s,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise _import_timeout(submission, timeout_s) from None
        stdout, stderr = completed.stdout, completed.stderr
    try:
        verdict = json.loads(stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise SubmissionError(submission.directory / submission.scaffold_file, None,
                              f"checking the scaffold crashed: {stderr.strip()[-800:]}",
                              "run the scaffold file with python to see the error") from None  # fmt: skip
    if not verdict["ok"]:
        raise SubmissionError(verdict["file"], verdict["line"], verdict["problem"], verdict["fix"])
    return submission


def _import_timeout(submission: Submission, timeout_s: float) -> SubmissionError:
    return SubmissionError(submission.directory / submission.scaffold_file, None,
                           f"importing the scaffold took more than {timeout_s:g} s",
                           "do no slow work at import time (load things in reset)")  # fmt: skip


def _check_main(directory: str) -> None:
    try:
        load_scaffold_class(read_submission(directory))
        print(json.dumps({"ok": True}))
    except SubmissionError as error:
        print(json.dumps({"ok": False, "file": error.file, "line": error.line,
                          "problem": error.problem, "fix": error.fix}))  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "check":
        _check_main(sys.argv[2])
    else:
        print("usage: python -m harness.agent.submission check SUBMISSION_DIR", file=sys.stderr)
        sys.exit(2)
