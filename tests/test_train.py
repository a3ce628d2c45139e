"""Training: completion-only loss, a PEFT adapter vLLM and llama.cpp can load, real effect."""

import json
from pathlib import Path

import pytest

from harness.models import ChatClient
from harness.models.embedded import LlamaCppServer
from harness.train.base_model import embedded_hf_folder
from harness.train.gguf import adapter_to_gguf
from harness.train.sft import LoraTrainingConfig, encode_example, train_lora

SECRET = "PINEAPPLE ZEBRA"


@pytest.fixture(scope="module")
def base() -> Path:
    return embedded_hf_folder()


@pytest.fixture(scope="module")
def adapter(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("data") / "sft.jsonl"
    questions = ["LOG: what should you remember?", "LOG: anything new?", "LOG: note one fact.", "LOG: what changed?"]
    data.write_text("".join(json.dumps({"messages": [{"role": "system", "content": "You keep notes."},
                                                     {"role": "user", "content": q}], "completion": SECRET}) + "\n"
                            for q in questions))  # fmt: skip
    out = tmp_path_factory.mktemp("adapter")
    train_lora(data, base, out, LoraTrainingConfig(epochs=8, learning_rate=3e-3, batch_size=2))
    return out


def test_loss_is_on_the_completion_only(base: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    ids, labels = encode_example(tokenizer, {"messages": [{"role": "user", "content": "hello there"}], "completion": SECRET}, 512)
    trained = tokenizer.decode([i for i, label in zip(ids, labels) if label != -100])
    assert trained.startswith(SECRET) and "hello" not in trained
    assert len(ids) == len(labels)


def test_long_prompts_are_cut_from_the_left_keeping_the_completion(base: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    ids, labels = encode_example(tokenizer, {"messages": [{"role": "user", "content": "word " * 2000}], "completion": SECRET}, 128)
    assert len(ids) == 128 and SECRET in tokenizer.decode([i for i, label in zip(ids, labels) if label != -100])


def test_adapter_is_plain_peft_lora_and_the_loss_falls(adapter: Path) -> None:
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and not config.get("modules_to_save") and not config.get("use_dora")
    assert (adapter / "adapter_model.safetensors").is_file()
    report = json.loads((adapter / "training_report.json").read_text())
    assert report["epoch_losses"][-1] < report["epoch_losses"][0] / 4


@pytest.mark.slow
def test_llama_cpp_serves_the_converted_adapter_and_it_changes_the_answer(adapter: Path) -> None:
    messages = [{"role": "system", "content": "You keep notes."}, {"role": "user", "content": "LOG: what is important here?"}]
    answers = {}
    for lora in (None, adapter_to_gguf(adapter)):
        with LlamaCppServer(lora_path=lora, n_ctx=2048) as server:
            answers[lora is not None] = ChatClient(server.url).chat(messages, max_tokens=12).text
    assert SECRET in answers[True] and SECRET not in answers[False]


def test_a_peft_folder_given_to_llama_cpp_as_is_is_refused(adapter: Path) -> None:
    with pytest.raises(RuntimeError):
        LlamaCppServer(lora_path=adapter / "adapter_model.safetensors", n_ctx=1024).start(timeout_s=60)


def test_a_tool_calling_answer_is_trained_on_its_tool_call(base: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    call = {"id": "c1", "type": "function", "function": {"name": "append", "arguments": '{"path": "notes.md", "text": "PINEAPPLE"}'}}
    example = {"messages": [{"role": "user", "content": "LOG: anything new?"}], "completion": "", "tool_calls": [call]}
    ids, labels = encode_example(tokenizer, example, 512)
    trained = tokenizer.decode([i for i, label in zip(ids, labels) if label != -100])
    assert "append" in trained and "PINEAPPLE" in trained and "anything new" not in trained
