"""Tool calls for servers without native tool calling (the embedded llama.cpp model).

The tools are described to the model in a system message, and its answer is constrained to
one JSON object by a JSON schema (llama.cpp turns it into a grammar):

    {"tool_calls": [{"name": "append", "arguments": {"path": "notes.md", "text": "..."}}],
     "content": "any text"}

The harness parses that object back into OpenAI-format tool calls, so a scaffold's code is
the same on every server. Earlier tool-calling turns of the conversation are sent in the
same JSON form (the model reads what it wrote), tool results as user messages. What was
sent and the raw JSON answer are what the trace records.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

MAX_CALLS = 4  # tool calls one answer may make (1 when the call says parallel_tool_calls=False)

SYSTEM_TEMPLATE = """You can use these tools:
{tools}

When you use tools, answer with one JSON object only: {{"tool_calls": [{{"name": TOOL, "arguments": {{...}}}}, ...]}}.
Put the tools you want to call in "tool_calls", or leave it empty; add "content": TEXT only for another answer."""


def _tool_line(tool: dict[str, Any]) -> str:
    function = tool["function"]
    parameters = function.get("parameters", {}).get("properties", {})
    return f"- {function['name']}({', '.join(parameters)}): {function.get('description', '')}"


def answer_schema(tools: list[dict[str, Any]], tool_choice: Any = "auto", parallel_tool_calls: bool = True) -> dict[str, Any]:
    """The JSON schema of an answer that may call `tools`, read as OpenAI reads `tool_choice`
    ("auto": any number of calls up to MAX_CALLS, "required": at least one, {"type": "function",
    "function": {"name": N}}: that tool) and `parallel_tool_calls` (False: at most one call)."""
    if isinstance(tool_choice, dict):
        name = tool_choice.get("function", {}).get("name")
        tools = [tool for tool in tools if tool["function"]["name"] == name]
        if not tools:
            raise ValueError(f"tool_choice names {name!r}, which is not among the tools offered")
    calls = [{"type": "object",
              "properties": {"name": {"const": tool["function"]["name"]},
                             "arguments": tool["function"].get("parameters") or {"type": "object"}},
              "required": ["name", "arguments"]} for tool in tools]  # fmt: skip
    array: dict[str, Any] = {"type": "array", "items": {"anyOf": calls}, "maxItems": MAX_CALLS if parallel_tool_calls else 1}
    if tool_choice == "required" or isinstance(tool_choice, dict):
        array["minItems"] = 1
    # "content" may be left out: an answer that only calls tools can end after its calls
    return {"type": "object", "properties": {"tool_calls": array, "content": {"type": "string"}},
            "required": ["tool_calls"]}  # fmt: skip


def _as_json_turn(message: dict[str, Any]) -> dict[str, Any]:
    if message.get("role") == "assistant" and message.get("tool_calls"):
        calls = [{"name": c["function"]["name"], "arguments": json.loads(c["function"].get("arguments") or "{}")}
                 for c in message["tool_calls"]]  # fmt: skip
        return {"role": "assistant", "content": json.dumps({"tool_calls": calls, "content": message.get("content") or ""})}
    if message.get("role") == "tool":
        return {"role": "user", "content": f"Tool result ({message.get('tool_call_id', '')}):\n{message.get('content', '')}"}
    return message


def has_tool_turns(messages: list[dict[str, Any]]) -> bool:
    return any(m.get("tool_calls") or m.get("role") == "tool" for m in messages)


def request_messages(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The conversation as sent: the tools' system message first (when tools are offered),
    earlier tool turns in JSON form (also in a call that offers no tools)."""
    turns = [_as_json_turn(m) for m in messages]
    if not tools:
        return turns
    # the same for every call offering these tools (whatever its tool_choice), so a server's
    # prefix cache serves the whole conversation
    system = SYSTEM_TEMPLATE.format(tools="\n".join(_tool_line(t) for t in tools))
    return [{"role": "system", "content": system}] + turns


def _complete_calls(text: str) -> list[Any]:
    """The tool calls written in full before an answer was cut off (by max_tokens)."""
    start = text.find("[", text.find('"tool_calls"'))
    if '"tool_calls"' not in text or start < 0:
        return []
    decoder, at = json.JSONDecoder(), start + 1
    calls: list[Any] = []
    while True:
        while at < len(text) and text[at] in " \t\n\r,":
            at += 1
        try:
            call, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            return calls
        calls.append(call)


def call_prefix(text: str) -> str:
    """Tool call ids from the answer itself, so the same answer gives the same ids in every run
    (they reach the next prompt with the tool results)."""
    return "call_" + hashlib.sha256(text.encode()).hexdigest()[:8]


def parse_answer(text: str, call_prefix: str) -> tuple[str, list[dict[str, Any]] | None]:
    """(content, OpenAI-format tool calls) of a JSON answer. An answer cut off by max_tokens
    keeps the tool calls it wrote in full (and no text); an answer that is no JSON at all is
    all text."""
    try:
        answer = json.loads(text)
        content, calls = str(answer.get("content") or ""), answer.get("tool_calls") or []
    except (json.JSONDecodeError, AttributeError):
        calls = _complete_calls(text)
        content = "" if calls else text
    converted = [{"id": f"{call_prefix}-{index}", "type": "function",
                  "function": {"name": str(call.get("name")), "arguments": json.dumps(call.get("arguments") or {})}}
                 for index, call in enumerate(calls) if isinstance(call, dict)]  # fmt: skip
    return content, converted or None
