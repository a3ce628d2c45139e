"""Submissions: broken ones are refused before any episode, with file, line and fix."""

from pathlib import Path

import pytest

from harness.agent.submission import (
    SubmissionError,
    check_submission,
    content_hash,
    read_submission,
)
from harness.runtime.local import run_forked

from conftest import write_submission

GOOD = """
from harness.agent import Scaffold, Step

class Agent(Scaffold):
    def step(self, step: Step) -> str:
        return step.actions[0]
"""


def test_reference_submissions_pass_the_check() -> None:
    for name in ("automem-seed", "automem-fixed-slots", "context-baseline", "balrog-naive"):
        submission = check_submission(Path("submissions") / name)
        assert submission.name == name and submission.scaffold_class == "Agent"


def test_missing_field_names_its_line_and_the_fix(tmp_path: Path) -> None:
    write_submission(tmp_path, GOOD, "name: x\ndescription: y\nauthors: []\nscaffold:\n")
    with pytest.raises(SubmissionError) as refused:
        read_submission(tmp_path)
    assert refused.value.line == 4 and "scaffold" in refused.value.problem
    assert "fix:" in str(refused.value)


def test_missing_scaffold_file_lists_what_is_there(tmp_path: Path) -> None:
    write_submission(tmp_path, GOOD, "name: x\ndescription: y\nauthors: [a]\nscaffold: agent.py:Agent\n")
    with pytest.raises(SubmissionError, match="agent.py, which does not exist.*scaffold.py"):
        read_submission(tmp_path)


def test_class_not_found_lists_the_classes(tmp_path: Path) -> None:
    write_submission(tmp_path, GOOD.replace("class Agent", "class MyAgent"))
    with pytest.raises(SubmissionError, match="defines no class Agent; classes found: MyAgent"):
        check_submission(tmp_path)


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    write_submission(tmp_path, "from harness.agent import Scaffold\n\nclass Agent(Scaffold)\n    pass\n")
    with pytest.raises(SubmissionError) as refused:
        check_submission(tmp_path)
    assert refused.value.file.endswith("scaffold.py") and refused.value.line == 3
    assert "syntax error" in refused.value.problem


def test_wrong_base_class_is_refused(tmp_path: Path) -> None:
    write_submission(tmp_path, "class Agent:\n    def step(self, step):\n        return 'north'\n")
    with pytest.raises(SubmissionError, match="does not inherit from harness.agent.Scaffold") as refused:
        check_submission(tmp_path)
    assert refused.value.line == 1


def test_scaffold_without_step_is_refused(tmp_path: Path) -> None:
    write_submission(tmp_path, "from harness.agent import Scaffold\n\nclass Agent(Scaffold):\n    pass\n")
    with pytest.raises(SubmissionError, match="does not implement step"):
        check_submission(tmp_path)


@pytest.mark.parametrize("forked", [False, True])
def test_import_error_in_scaffold_is_reported_with_its_line(tmp_path: Path, forked: bool) -> None:
    write_submission(tmp_path, "import not_a_module_anywhere\n" + GOOD)
    with pytest.raises(SubmissionError, match="ModuleNotFoundError") as refused:
        check_submission(tmp_path, run_in=run_forked if forked else None)
    assert refused.value.line == 1


@pytest.mark.parametrize("forked", [False, True])
def test_a_scaffold_whose_import_hangs_is_refused_after_the_timeout(tmp_path: Path, forked: bool) -> None:
    write_submission(tmp_path, "import time\ntime.sleep(60)\n" + GOOD)
    with pytest.raises(SubmissionError, match="importing the scaffold took more than 3 s"):
        check_submission(tmp_path, timeout_s=3, run_in=run_forked if forked else None)


def test_invalid_yaml_is_refused_with_its_line(tmp_path: Path) -> None:
    write_submission(tmp_path, GOOD, "name: x\ndescription: [unclosed\nauthors: [a]\n")
    with pytest.raises(SubmissionError, match="not valid YAML"):
        read_submission(tmp_path)


@pytest.mark.parametrize("forked", [False, True])
def test_scaffold_code_is_not_imported_by_the_harness_process(tmp_path: Path, forked: bool) -> None:
    marker = tmp_path / "imported.txt"
    write_submission(tmp_path / "s", f"open({str(marker)!r}, 'a').write('x')\n" + GOOD)
    import sys

    before = set(sys.modules)
    check_submission(tmp_path / "s", run_in=run_forked if forked else None)
    assert marker.exists()  # the check really imported it...
    assert not any(name.startswith("submission_") for name in set(sys.modules) - before)  # ...elsewhere


def test_content_hash_changes_with_any_file(tmp_path: Path) -> None:
    write_submission(tmp_path, GOOD)
    first = content_hash(tmp_path)
    (tmp_path / "prompts.txt").write_text("hello")
    assert content_hash(tmp_path) != first


def test_answer_rule_and_answer_length_are_read_and_checked(tmp_path: Path) -> None:
    head = "name: x\ndescription: y\nauthors: [a]\nscaffold: scaffold.py:Agent\n"
    write_submission(tmp_path, GOOD, head + "answers: exact\nmodel: {uses: [], max_tokens: 8192}\n")
    submission = read_submission(tmp_path)
    assert (submission.answers, submission.model.max_tokens) == ("exact", 8192)
    write_submission(tmp_path, GOOD, head + "answers: lenient\n")
    with pytest.raises(SubmissionError, match="answers: 'lenient' is not one of forgiving, exact") as refused:
        read_submission(tmp_path)
    assert refused.value.line == 5
    write_submission(tmp_path, GOOD, head + "model: {max_tokens: many}\n")
    with pytest.raises(SubmissionError, match="model.max_tokens 'many'"):
        read_submission(tmp_path)


def test_a_server_whose_context_cannot_hold_the_answers_asked_refuses_or_says_so(tmp_path: Path) -> None:
    from harness.models.router import ModelConfig
    from harness.tracks.eval import Endpoint, EvalError, answer_budget

    head = "name: x\ndescription: y\nauthors: [a]\nscaffold: scaffold.py:Agent\n"
    write_submission(tmp_path, GOOD, head + "model: {max_tokens: 8192}\n")
    submission = read_submission(tmp_path)
    vllm = Endpoint(ModelConfig(base_url="http://x", model="m", kind="vllm"), [], context_tokens=4096)
    with pytest.raises(EvalError, match="--max-model-len above 8192"):
        answer_budget(submission, vllm)
    llama = Endpoint(ModelConfig(base_url="http://x", model="m", kind="llamacpp"), [], context_tokens=8192)
    assert "caps each answer" in answer_budget(submission, llama)["capped"]
    roomy = Endpoint(ModelConfig(base_url="http://x", model="m", kind="vllm"), [], context_tokens=32768)
    assert answer_budget(submission, roomy) == {"submission_max_tokens": 8192, "server_context_tokens": 32768}
