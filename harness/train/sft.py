"""LoRA supervised fine-tuning with peft: the trainer image's entry point (`harness train`).

Data: JSON lines {"messages": [...], "completion": "..."} where `messages` is a recorded chat
call's full input and `completion` its recorded output. Loss is on the completion tokens only
(the assistant turn, closed by the end-of-turn token). Output: a PEFT adapter folder
(adapter_config.json + adapter_model.safetensors, no modules_to_save, no DoRA) that vLLM loads
with --lora-modules and that converts to a llama.cpp adapter.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.train.fields import check_fields


@dataclass
class LoraTrainingConfig:
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    epochs: int = 1
    learning_rate: float = 2e-4
    batch_size: int = 4  # examples per optimizer step (gradient accumulation)
    max_length: int = 2048  # tokens; longer prompts are cut from the left
    seed: int = 0

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> LoraTrainingConfig:
        check_fields(cls, data, "LoRA config keys")
        config = cls(**data)
        if not 1 <= config.rank <= 256 or config.epochs < 1 or not 0 < config.learning_rate < 1:
            raise ValueError(f"LoRA config out of range: {config}")
        return config

    @classmethod
    def from_file(cls, path: str | Path) -> LoraTrainingConfig:
        return cls.from_mapping(yaml.safe_load(Path(path).read_text()) or {})


def read_examples(path: str | Path) -> list[dict[str, Any]]:
    examples = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        record = json.loads(line)
        if not isinstance(record.get("messages"), list) or not isinstance(record.get("completion"), str):
            raise ValueError(f"{path}:{number}: each line needs 'messages' (a list) and 'completion' (a string)")
        examples.append(record)
    if not examples:
        raise ValueError(f"{path} holds no examples")
    return examples


def answer_message(example: dict[str, Any]) -> dict[str, Any]:
    """The recorded answer as the assistant message the chat template renders: its text, and
    its tool calls verbatim when it made some."""
    message: dict[str, Any] = {"role": "assistant", "content": example["completion"]}
    if example.get("tool_calls"):
        message["tool_calls"] = example["tool_calls"]
    return message


def encode_example(tokenizer: Any, example: dict[str, Any], max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels (-100 on the prompt: loss on the completion only). A tool-calling
    answer is rendered in the chat template's own tool format (with the tools offered)."""
    tools = example.get("tools") or None
    prompt = tokenizer.apply_chat_template(example["messages"], tools=tools, add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(example["messages"] + [answer_message(example)], tools=tools, tokenize=False)
    calls = example.get("tool_calls") or []
    dropped = any(call["function"]["name"] not in full[len(prompt):] for call in calls)
    if not full.startswith(prompt) or dropped:
        # templates that rewrite earlier turns, or know no tool calls: the answer appended as
        # the model would write it, the text then the calls as JSON
        answer = example["completion"] + (json.dumps(calls) if calls else "")
        full = prompt + answer + (tokenizer.eos_token or "")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    completion_ids = full_ids[len(prompt_ids):]
    room = max(1, max_length - len(completion_ids))
    prompt_ids = prompt_ids[-room:]
    ids = (prompt_ids + completion_ids)[-max_length:]
    labels = ([-100] * len(prompt_ids) + completion_ids)[-max_length:]
    return ids, labels


def train_lora(data_path: str | Path, base_dir: str | Path, out_dir: str | Path,
               config: LoraTrainingConfig | None = None) -> dict[str, Any]:  # fmt: skip
    """Train a LoRA adapter on CPU or GPU; returns (and writes) the training report."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = config or LoraTrainingConfig()
    started = time.perf_counter()
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    examples = read_examples(data_path)
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    base_model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    lora = LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                      target_modules=list(config.target_modules), bias="none", task_type="CAUSAL_LM")  # fmt: skip
    model = get_peft_model(base_model, lora)
    encoded = [encode_example(tokenizer, example, config.max_length) for example in examples]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)
    model.train()
    losses: list[float] = []
    order = list(range(len(encoded)))
    for _ in range(config.epochs):
        random.shuffle(order)
        epoch_loss, optimizer_steps = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            optimizer.zero_grad()
            batch_loss = 0.0
            for index in batch:
                ids, labels = encoded[index]
                output = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]))
                (output.loss / len(batch)).backward()
                batch_loss += output.loss.item() / len(batch)
            optimizer.step()
            epoch_loss += batch_loss
            optimizer_steps += 1
        losses.append(epoch_loss / max(1, optimizer_steps))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    adapter_config["base_model_name_or_path"] = str(Path(base_dir).resolve())
    (out / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))
    report = {
        "examples": len(examples),
        "tokens": sum(len(ids) for ids, _ in encoded),
        "completion_tokens": sum(sum(label != -100 for label in labels) for _, labels in encoded),
        "epoch_losses": losses,
        "config": asdict(config),
        "base": str(Path(base_dir).resolve()),
        "seconds": round(time.perf_counter() - started, 2),
    }
    (out / "training_report.json").write_text(json.dumps(report, indent=2))
    return report
