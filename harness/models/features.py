"""What a model server can do, tried before a run: plain answers, tool calls, constrained choices.

A server that lists its models may still refuse what a scaffold asks of it: vLLM started
without tool calling answers every request with tools by HTTP 400, which the episode loop
would score as the scaffold's own bad request. So the preflight sends one tiny request per
feature; a refused feature the submission uses (`model.uses` in submission.yaml, default
all) stops the run before its first episode, naming the server option to fix; a refused
feature it does not declare is passed to the workers, where a call that uses it anyway fails
as infrastructure (the server cannot), never as the scaffold's fault.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from harness.models.client import ChatClient, ModelError, ModelRequestError

FEATURES = ("tools", "choices")

_PROBE_TOOL = {"type": "function", "function": {
    "name": "note", "description": "Write a note.",
    "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}}  # fmt: skip
_ASK = [{"role": "user", "content": "Write the note 'ok'."}]

# The option that turns a feature on, by server kind.
FIXES = {
    ("tools", "vllm"): "start vLLM with --enable-auto-tool-choice and a --tool-call-parser for the model "
                       "(e.g. hermes for Qwen2.5)",
    ("choices", "vllm"): "use a vLLM with structured outputs (v0.12 or later) and do not disable them",
    ("tools", "llamacpp"): "use llama-cpp-python 0.3 or later (tools are sent as a JSON schema)",
    ("choices", "llamacpp"): "use llama-cpp-python 0.3 or later (choices are sent as a grammar)",
}


def fix_for(feature: str, kind: str) -> str:
    return FIXES.get((feature, kind), f"use a server that supports {feature} (OpenAI's tool calling / "
                                      f"constrained output), or declare in submission.yaml that the "
                                      f"submission does without: model.uses")  # fmt: skip


def probes(client: ChatClient, feature: str) -> list[dict[str, Any]]:
    """The requests that show a feature works (keyword arguments of ChatClient.chat). Each asks
    for one token, as the plain preflight request: only whether the server accepts counts."""
    if feature == "tools":
        return [{"tools": [_PROBE_TOOL], "tool_choice": tool_choice, "max_tokens": 1}
                for tool_choice in ("auto", "required", "none")]  # fmt: skip
    if feature == "choices":  # the server's own constraint fields, as chat(choices=...) sends them
        return [{"extra_body": client.constraint(["yes", "no"]), "max_tokens": 1}]
    raise ValueError(f"unknown feature {feature!r}; features: {', '.join(FEATURES)}")


def refused_features(client: ChatClient, model: str | None = None) -> dict[str, str]:
    """feature -> the server's refusal, for each feature one of whose probes it refused (HTTP
    400/413/422; the first refused in probe order is named). Other failures (the server gone)
    raise, as any preflight request. The probes are sent at once: one after another they kept
    every episode of a run waiting for four round trips (0.8 s at 200 ms a call)."""
    asked = [(feature, probe) for feature in FEATURES for probe in probes(client, feature)]

    def ask(probe: dict[str, Any]) -> str | None:
        try:
            client.chat(list(_ASK), model=model, **probe)
        except ModelRequestError as error:
            return f"{error} (asked with {_describe(probe)})"
        return None

    with ThreadPoolExecutor(max_workers=len(asked), thread_name_prefix="preflight") as pool:
        answers = list(pool.map(ask, [probe for _, probe in asked]))  # raises the first other failure
    refused: dict[str, str] = {}
    for (feature, _), refusal in zip(asked, answers):
        if refusal is not None and feature not in refused:
            refused[feature] = refusal
    return refused


def _describe(probe: dict[str, Any]) -> str:
    if "tools" in probe:
        return f"tools and tool_choice={probe['tool_choice']!r}"
    return "choices"


def uses_refused(feature: str, refusal: str) -> ModelError:
    """The failure of a call that uses a feature the server refused before the run."""
    from harness.models.client import ModelUnavailableError

    return ModelUnavailableError(f"the model server refused {feature} before the run started ({refusal}); "
                                 f"this call needs it: the server's set-up, not the scaffold, fails here")  # fmt: skip
