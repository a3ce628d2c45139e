"""Checks of a trace against itself: what one record of a step determines of another.

- an answer and its action: `valid` is whether the scaffold's answer names an action (the
  harness's own rule, agent.episode.resolve_action), and the action played is that one, or the
  task's default when it does not;
- a JSON-mode answer and its tool calls: they are the ones its raw text makes;
- a memory operation a tool call caused and that call: the operation is the one the tool names,
  on the path, with the text or pattern of the call's arguments, and the call is in the step's
  answers (the chat call it names made it).
"""

from __future__ import annotations

import json
from typing import Any

from harness.agent.answers import resolve_action
from harness.models import tool_json
from harness.runs.records import LLMCall, MemoryOpRecord, StepRecord

OP_OF_TOOL = {"list": "list", "read": "read", "search": "search", "append": "append", "create": "create",
              "rewrite": "write", "delete": "delete"}  # fmt: skip


def action_problem(step: StepRecord, actions: tuple[str, ...], default_action: str, rule: str = "forgiving") -> str | None:
    """What is wrong with a played step's `valid` flag or action, given its raw answer."""
    if step.action is None:
        return None
    resolved = resolve_action(step.raw_action, actions, rule)
    if step.valid != (resolved is not None):
        return f"valid is {step.valid}, but the answer {str(step.raw_action)[:80]!r} {'names' if resolved else 'names no'} action"
    expected = resolved if resolved is not None else default_action
    if step.action != expected:
        return f"the action played is {step.action!r}, but the answer {str(step.raw_action)[:80]!r} gives {expected!r}"
    return None


def _tool_calls(step: StepRecord) -> dict[str, tuple[int, dict[str, Any]]]:
    """tool call id -> (index of the chat call whose answer holds it, the tool call)."""
    return {str(call.get("id")): (index, call) for index, chat in enumerate(step.llm_calls)
            for call in chat.tool_calls or () if call.get("id")}  # fmt: skip


def _expected_fields(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The recorded fields an operation carried out for this tool call has."""
    if name == "list":
        return {"path": str(arguments.get("dir", ""))}
    if name == "search":
        return {"path": str(arguments.get("path", "")) or None, "pattern": str(arguments.get("pattern"))}
    fields: dict[str, Any] = {"path": arguments.get("path")}
    if name in ("append", "create", "rewrite"):
        fields["text"] = str(arguments.get("text"))
    return fields


def link_problem(op: MemoryOpRecord, step: StepRecord, calls: dict[str, tuple[int, dict[str, Any]]]) -> str | None:
    """What is wrong with an operation's link to the tool call that caused it."""
    if op.tool_call_id is None:
        return None if op.call is None else "an operation of the scaffold's own code names a chat call"
    if op.tool_call_id not in calls:
        return f"the operation names tool call {op.tool_call_id!r}, which no answer of the step made"
    index, call = calls[op.tool_call_id]
    if op.call != index:
        return f"the operation names chat call {op.call}, but tool call {op.tool_call_id!r} is in chat call {index}'s answer"
    function = call.get("function") or {}
    name = str(function.get("name") or "")
    if not op.ok:
        return None  # a refused call: its arguments may be anything
    try:
        raw = function.get("arguments") or "{}"
        arguments = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        return f"tool call {op.tool_call_id!r} has no JSON arguments, yet its operation succeeded"
    if OP_OF_TOOL.get(name) != op.op or not isinstance(arguments, dict):
        return f"tool call {op.tool_call_id!r} calls {name!r}, but the operation recorded is {op.op!r}"
    for field, value in _expected_fields(name, arguments).items():
        if getattr(op, field) != value:
            return (f"the operation's {field} is {str(getattr(op, field))[:60]!r}, but tool call {op.tool_call_id!r} "
                    f"asked for {str(value)[:60]!r}")  # fmt: skip
    return None


def answer_problem(call: LLMCall) -> str | None:
    """A JSON-mode answer's tool calls are parsed from its raw text (the recorded output): the
    recorded calls must be those, name and arguments."""
    if call.tool_mode != "json" or call.output is None or call.error is not None:
        return None
    _, parsed = tool_json.parse_answer(call.output, "verify")
    named = [(c["function"]["name"], c["function"]["arguments"]) for c in parsed or ()]
    recorded = [((c.get("function") or {}).get("name"), (c.get("function") or {}).get("arguments")) for c in call.tool_calls or ()]
    if named != recorded:
        return f"the {call.routine} call's tool calls are not the ones its answer's text makes ({len(recorded)} recorded, {len(named)} in the text)"
    return None


def trace_problems(steps: list[StepRecord], actions: tuple[str, ...], default_action: str,
                   rule: str = "forgiving") -> list[tuple[int, str]]:  # fmt: skip
    """(step index, problem) of every step whose records contradict each other."""
    problems = []
    for step in steps:
        problem = action_problem(step, actions, default_action, rule)
        if problem:
            problems.append((step.index, problem))
        problems += [(step.index, found) for call in step.llm_calls if (found := answer_problem(call))]
        calls = _tool_calls(step)
        for op in step.memory_ops:
            problem = link_problem(op, step, calls)
            if problem:
                problems.append((step.index, problem))
    return problems
