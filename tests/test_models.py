"""The chat client and the router against real HTTP servers (scripted and llama.cpp)."""

import time

import pytest

from harness.models import ChatClient, ModelRouter, ModelUnavailableError, Specialist
from harness.models.client import ModelRequestError, gbnf_choice_grammar
from harness.models.embedded import free_port
from harness.models.scripted import ScriptedModelServer, first_choice_or


def test_chat_returns_text_tokens_and_latency() -> None:
    with ScriptedModelServer(lambda request: "move north now") as server:
        result = ChatClient(server.url).chat([{"role": "user", "content": "where to?"}])
    assert result.text == "move north now"
    assert result.prompt_tokens == 2 and result.completion_tokens == 3
    assert result.latency_s > 0 and result.model == "scripted"


def test_transient_server_errors_are_retried_with_backoff() -> None:
    with ScriptedModelServer(lambda request: "ok") as server:
        server.failures = [503, 429]
        result = ChatClient(server.url, max_retries=3).chat([{"role": "user", "content": "hi"}])
        assert result.text == "ok"
        assert len(server.requests) == 3


def test_persistent_failure_raises_model_unavailable() -> None:
    with ScriptedModelServer(lambda request: "ok") as server:
        server.failures = [500] * 10
        with pytest.raises(ModelUnavailableError, match="failed"):
            ChatClient(server.url, max_retries=1).chat([{"role": "user", "content": "hi"}])


def test_dead_server_raises_model_unavailable_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(ModelUnavailableError):
        ChatClient(f"http://127.0.0.1:{free_port()}", max_retries=1, timeout_s=5).chat(
            [{"role": "user", "content": "hi"}]
        )
    assert time.monotonic() - started < 15


def test_choices_become_vllm_structured_outputs() -> None:
    with ScriptedModelServer(first_choice_or("?"), owned_by="vllm") as server:
        client = ChatClient(server.url)
        result = client.chat([{"role": "user", "content": "go"}], choices=["north", "south"])
        assert client.kind == "vllm"
        assert server.requests[-1]["structured_outputs"] == {"choice": ["north", "south"]}
        assert result.text == "north"


def test_gbnf_grammar_escapes_quotes_and_backslashes() -> None:
    assert gbnf_choice_grammar(['say "hi"', "a\\b"]) == 'root ::= "say \\"hi\\"" | "a\\\\b"'


def test_router_sends_log_and_recall_to_the_specialist_and_act_to_base() -> None:
    with ScriptedModelServer(lambda r: "base answer") as base, ScriptedModelServer(lambda r: "specialist answer") as special:
        router = ModelRouter(ChatClient(base.url), Specialist(ChatClient(special.url), None, "memory-lora"))
        messages = [{"role": "user", "content": "x"}]
        assert router.chat(messages, "log").text == "specialist answer"
        assert router.chat(messages, "recall").adapter == "memory-lora"
        act = router.chat(messages, "act")
        assert act.text == "base answer" and act.adapter is None


def test_router_on_vllm_names_the_adapter_as_the_model() -> None:
    with ScriptedModelServer(lambda r: r["model"], owned_by="vllm") as server:
        client = ChatClient(server.url)
        router = ModelRouter(client, Specialist(client, "memory-lora", "memory-lora"))
        assert router.chat([{"role": "user", "content": "x"}], "log").text == "memory-lora"
        assert router.chat([{"role": "user", "content": "x"}], "act").text == "scripted"


def test_router_takes_any_routine_name_and_refuses_malformed_ones() -> None:
    with ScriptedModelServer(lambda r: "x") as server:
        router = ModelRouter(ChatClient(server.url))
        assert router.chat([{"role": "user", "content": "hi"}], "think").text == "x"  # the scaffold's own routine
        with pytest.raises(ValueError, match="routine names are lower-case words"):
            router.chat([], "Think!")


def test_llama_cpp_grammar_constrains_the_real_embedded_model(embedded_model_url: str) -> None:
    client = ChatClient(embedded_model_url)
    assert client.kind == "llamacpp"
    choices = ["far northeast", "search", "Make Wood Pickaxe"]
    for prompt in ("Write a poem about the sea.", "Answer with a number: 2+2=", "Which way?"):
        result = client.chat([{"role": "user", "content": prompt}], choices=choices, max_tokens=16)
        assert result.text in choices
    free = client.chat([{"role": "user", "content": "Write a poem about the sea."}], max_tokens=16)
    assert free.text not in choices and free.completion_tokens > 0


def test_a_request_the_server_refuses_is_the_request_makers_fault_and_is_not_retried() -> None:
    with ScriptedModelServer(lambda request: "ok") as server:
        server.failures = [400]
        with pytest.raises(ModelRequestError, match=r"refused the request \(HTTP 400\)") as raised:
            ChatClient(server.url, max_retries=3).chat([{"role": "user", "content": "hi"}])
        assert raised.value.server == server.url.rstrip("/") and len(server.requests) == 1


@pytest.mark.parametrize("status", [401, 404, 500])
def test_a_server_or_set_up_failure_is_infrastructure(status: int) -> None:
    with ScriptedModelServer(lambda request: "ok") as server:
        server.failures = [status] * 5
        with pytest.raises(ModelUnavailableError, match=f"HTTP {status}") as raised:
            ChatClient(server.url, max_retries=1).chat([{"role": "user", "content": "hi"}])
        assert server.url.rstrip("/") in str(raised.value)


def test_a_server_that_drops_the_connection_is_infrastructure() -> None:
    with ScriptedModelServer(lambda request: "ok") as server:
        server.answer_chats = 0
        with pytest.raises(ModelUnavailableError, match="connection error"):
            ChatClient(server.url, max_retries=1).chat([{"role": "user", "content": "hi"}])
        assert ChatClient(server.url).model == "scripted"  # it still lists its model


@pytest.mark.slow
def test_an_over_long_prompt_on_the_embedded_server_is_a_request_error(embedded_model_url: str) -> None:
    with pytest.raises(ModelRequestError, match="context length"):
        ChatClient(embedded_model_url, max_retries=0).chat([{"role": "user", "content": "word " * 5000}])
