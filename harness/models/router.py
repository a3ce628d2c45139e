"""Routing of chat calls by routine: the memory specialist for LOG and recall, base for acting.

With an adapter, AUTOMEM's two-model inference shares one conversation between two model
instances: `log` and `recall` calls go to the memory specialist (the LoRA copy) and `act` calls
to the unmodified base model. On vLLM both live in one server and the adapter is chosen by
model name; on llama.cpp the specialist is a second server started with the adapter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from harness.models.client import ChatClient, ChatResult, ModelRequestError
from harness.models.features import uses_refused
from harness.models.keys import api_key

# Routines are names the scaffold chooses (e.g. log, recall, reflect, summarize, act); the
# AUTOMEM ones are conventions. `act` is the world action, which stays on the base model.
ROUTINES = ("log", "recall", "act")
DEFAULT_ADAPTER_ROUTINES = ("log", "recall")
ROUTINE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def check_routine(name: object) -> str:
    """A routine name: lower-case letters, digits, '_' or '-', starting with a letter (<= 32)."""
    if not isinstance(name, str) or not ROUTINE_NAME.fullmatch(name):
        raise ValueError(f"routine names are lower-case words like 'log', 'reflect' or 'act' "
                         f"(letters, digits, _ and -, at most 32), got {name!r}")  # fmt: skip
    return name


class ModelChoiceError(ValueError):
    """A chat call that tried to pick its model: the harness routes by routine, nothing else."""


# Request fields that would choose or replace what the harness sends and records.
FIELDS_THE_HARNESS_SETS = ("model", "messages")


def check_no_model_choice(generation: dict[str, Any]) -> None:
    """Refuse a chat call that names its model (or the messages) itself, directly or in extra_body."""
    extra = generation.get("extra_body") or {}
    named = [key for key in FIELDS_THE_HARNESS_SETS if key in generation or (isinstance(extra, dict) and key in extra)]
    if named:
        raise ModelChoiceError(
            f"chat(..., {named[0]}=...) is refused: the harness chooses the model by routine (the memory "
            f"specialist answers the submission's adapter_routines, the base model every other routine) and sends "
            f"the messages given as the first argument; remove {named[0]!r} from the call")


NO_MODEL = "none"  # a run without a model server (`--model none`, or submission.yaml `model: none`)


class NoModel:
    """The model of a run that has none: any chat call is the scaffold's error, named."""

    model = NO_MODEL

    def chat(self, messages: list[dict[str, Any]], **generation: Any) -> ChatResult:
        raise ModelRequestError("this run has no model server (--model none, or `model: none` in submission.yaml), "
                                "yet the scaffold made a chat call", server=NO_MODEL)  # fmt: skip


@dataclass
class Specialist:
    """Where the adapter answers: a client (maybe the base one) and the model name to ask for."""

    client: ChatClient
    model: str | None  # vLLM: the LoRA module's name; llama.cpp: None (the server's own)
    adapter: str  # the adapter's name as recorded in traces


class ModelRouter:
    def __init__(
        self,
        base: ChatClient | NoModel,
        specialist: Specialist | None = None,
        adapter_routines: tuple[str, ...] = DEFAULT_ADAPTER_ROUTINES,
        refused_features: dict[str, str] | None = None,
    ) -> None:
        for name in adapter_routines:
            check_routine(name)
        self.base = base
        self.specialist = specialist
        self.adapter_routines = tuple(adapter_routines)
        self.refused_features = dict(refused_features or {})  # feature -> the server's refusal (models.features)

    def chat(self, messages: list[dict[str, Any]], routine: str, **generation: Any) -> ChatResult:
        check_routine(routine)
        check_no_model_choice(generation)
        for feature, refusal in self.refused_features.items():
            if generation.get(feature):
                raise uses_refused(feature, refusal)
        if self.specialist is not None and routine in self.adapter_routines:
            result = self.specialist.client.chat(messages, model=self.specialist.model, **generation)
            result.adapter = self.specialist.adapter
            return result
        return self.base.chat(messages, **generation)


@dataclass
class ModelConfig:
    """Where a worker's chat calls go: serializable, so it crosses process boundaries."""

    base_url: str
    model: str | None = None  # the base model's name on the server (default: its first)
    kind: str | None = None  # vllm | llamacpp | openai (default: detected)
    specialist_url: str | None = None  # a second server with the adapter (llama.cpp)
    specialist_model: str | None = None  # the adapter's model name (vLLM --lora-modules)
    adapter: str | None = None  # the adapter's name in traces
    adapter_routines: tuple[str, ...] = DEFAULT_ADAPTER_ROUTINES
    timeout_s: float = 600.0
    max_retries: int = 4
    base_socket: str | None = None  # reach base_url through this Unix socket (sandboxes)
    specialist_socket: str | None = None
    api_key_env: str | None = None  # the variable holding the key (never the key: this is written to job files)
    refused_features: dict[str, str] = field(default_factory=dict)  # what the server refused before the run

    def router(self) -> ModelRouter:
        if self.kind == NO_MODEL:
            return ModelRouter(NoModel(), None, tuple(self.adapter_routines))
        base = ChatClient(self.base_url, self.model, kind=self.kind, timeout_s=self.timeout_s,
                          max_retries=self.max_retries, unix_socket=self.base_socket,
                          api_key=api_key(self.api_key_env))  # fmt: skip
        specialist = None
        if self.adapter:
            client = base
            if self.specialist_url:
                client = ChatClient(self.specialist_url, kind=self.kind, timeout_s=self.timeout_s,
                                    max_retries=self.max_retries, unix_socket=self.specialist_socket)  # fmt: skip
            specialist = Specialist(client, self.specialist_model, self.adapter)
        return ModelRouter(base, specialist, tuple(self.adapter_routines), self.refused_features)
