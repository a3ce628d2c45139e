"""The memory's operations as tools the model calls (OpenAI function-calling format).

A scaffold offers `memory.tools(...)` in a chat call and hands each tool call of the answer to
`memory.call_tool(call)`, which carries it out in the sandbox and returns the `tool` message
to send back. Each operation is recorded with the tool call's id, so the trace shows which
model decision wrote or read what. Model mistakes come back as tool errors, counted as
refused operations; they never end the episode.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.memory.sandbox import Memory

# Paths the sandbox always accepts (relative, no '..', no hidden or odd names): a server that
# honours schemas (llama.cpp) keeps the model's paths inside the memory.
PATH_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$"
_PATH = {"type": "string", "description": "a file path inside the memory, e.g. 'notes.md' or 'levels/1.md'",
         "pattern": PATH_PATTERN, "maxLength": 80}  # fmt: skip
_TEXT = {"type": "string", "description": "the text"}
_FOLDER = {"type": "string", "description": "a file or folder inside the memory", "pattern": PATH_PATTERN, "maxLength": 80}
_FREE_TEXT = ("text", "pattern")  # the arguments max_text_chars bounds
TOOL_SPECS: dict[str, tuple[str, dict[str, Any], list[str]]] = {
    "list": ("List the memory files (under a folder, if given).", {"dir": _FOLDER}, []),
    "read": ("Read a memory file whole.", {"path": _PATH}, ["path"]),
    "search": ("Search the memory for lines matching a pattern (case-insensitive); answers 'file:line: text'.",
               {"pattern": {"type": "string"}, "path": _FOLDER},
               ["pattern"]),
    "append": ("Add text at the end of a memory file (created if missing).", {"path": _PATH, "text": _TEXT}, ["path", "text"]),
    "create": ("Create a new memory file holding the text.", {"path": _PATH, "text": _TEXT}, ["path", "text"]),
    "rewrite": ("Replace the whole text of a memory file.", {"path": _PATH, "text": _TEXT}, ["path", "text"]),
    "delete": ("Delete a memory file.", {"path": _PATH}, ["path"]),
}  # fmt: skip
TOOL_NAMES = tuple(TOOL_SPECS)


def tool_definitions(names: tuple[str, ...] = (), max_text_chars: int | None = None) -> list[dict[str, Any]]:
    """The definitions of the named memory tools (all when none is named). `max_text_chars`
    bounds the text an answer writes or searches for (a JSON schema's maxLength: servers that
    constrain answers by schema hold the model to it, which keeps answers short)."""
    unknown = [name for name in names if name not in TOOL_SPECS]
    if unknown:
        raise ValueError(f"no memory tool {', '.join(unknown)}; tools: {', '.join(TOOL_NAMES)}")
    if max_text_chars is not None and max_text_chars < 1:
        raise ValueError("max_text_chars must be at least 1")

    def bounded(key: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {**spec, "maxLength": max_text_chars} if max_text_chars and key in _FREE_TEXT else dict(spec)

    return [{"type": "function", "function": {
        "name": name, "description": TOOL_SPECS[name][0],
        "parameters": {"type": "object", "properties": {key: bounded(key, spec) for key, spec in TOOL_SPECS[name][1].items()},
                       "required": TOOL_SPECS[name][2]}}}
        for name in names or TOOL_NAMES]  # fmt: skip


def _run(memory: Memory, name: str, arguments: dict[str, Any]) -> str:
    if name == "list":
        return "\n".join(memory.list(str(arguments.get("dir", "")))) or "(no files)"
    if name == "read":
        return memory.read(arguments["path"])
    if name == "search":
        return "\n".join(memory.search(str(arguments["pattern"]), str(arguments.get("path", "")))) or "(no match)"
    if name == "append":
        memory.append(arguments["path"], str(arguments["text"]))
        return f"ok: appended {len(str(arguments['text']))} characters to {arguments['path']}"
    if name == "create":
        memory.create(arguments["path"], str(arguments["text"]))
        return f"ok: created {arguments['path']}"
    if name == "rewrite":
        memory.write(arguments["path"], str(arguments["text"]))
        return f"ok: rewrote {arguments['path']}"
    memory.delete(arguments["path"])
    return f"ok: deleted {arguments['path']}"


def _arguments(name: str, call: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments, checked against the tool's required parameters."""
    if name not in TOOL_SPECS:
        raise ValueError(f"there is no memory tool {name!r}; tools: {', '.join(TOOL_NAMES)}")
    raw = call.get("function", {}).get("arguments") or "{}"
    arguments = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(arguments, dict):
        raise ValueError("the arguments must be a JSON object")
    missing = [key for key in TOOL_SPECS[name][2] if key not in arguments]
    if missing:
        raise ValueError(f"{name} needs {', '.join(missing)}")
    return arguments


def call_tool(memory: Memory, call: dict[str, Any]) -> dict[str, Any]:
    """Carry out one tool call; the `tool` message answering it."""
    call_id = str(call.get("id") or "")
    name = str(call.get("function", {}).get("name") or "")
    memory.tool_call_id = call_id or None
    try:
        try:
            arguments = _arguments(name, call)
        except (ValueError, json.JSONDecodeError) as error:
            memory.record_refusal(name or "?", f"{type(error).__name__}: {error}")
            content = f"error: {error}"
        else:
            try:
                content = _run(memory, name, arguments)
            except Exception as error:  # recorded by the memory as a refused operation
                content = f"error: {type(error).__name__}: {error}"
    finally:
        memory.tool_call_id = None
    return {"role": "tool", "tool_call_id": call_id, "content": content}
