"""Track `memory` (AUTOMEM outer loop 2): train a memory specialist from the agent's own words.

1. A pool of traces: the submission on training seeds, disjoint from the evaluation seeds.
2. Each trial, the meta-LLM (given the scaffold code, pool statistics, sampled memory-routine
   calls and earlier trials) returns one decision: selection rules, composition and a LoRA
   config. The harness builds the SFT set from verbatim recorded `log`/`recall` calls only,
   trains the adapter (`harness train`, in its own process), and evaluates it with two-model
   inference on the evaluation seeds (specialist for log/recall, unmodified base for act).
3. The best trial's adapter wins; the trial table compares every trial with no adapter.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.agent.submission import check_submission
from harness.models.keys import DEFAULT_API_KEY_ENV
from harness.report.tables import number, percent
from harness.runs.layout import RunDir, atomic_write_json, read_json
from harness.runs.read import read_run
from harness.tracks.common import (
    TrackError,
    TrackState,
    delta_text,
    evaluate,
    held_out_report,
    meta_model,
    now,
    paired_comparison,
    publish_row,
    split_seeds,
    table_name,
    track_root,
    write_table,
)
from harness.tracks.eval import EvalOptions
from harness.tracks.meta import CHARS_PER_TOKEN, MetaModel, MetaReplyError, clip, parse_json_object
from harness.tracks.records import (
    Gate,
    MemoryTrackRecord,
    MemoryTrial,
    RunFigures,
    gate_verdict,
)
from harness.train.data import (
    Candidate,
    Composition,
    SelectionRules,
    build_sft_data,
    candidates_from_runs,
)
from harness.train.sft import LoraTrainingConfig

SYSTEM_PROMPT = """You are the training engine of an LLM agent's memory skill. The agent plays text
games; each step it calls its model for LOG (what to write to its memory files) and RECALL
(what to look up), then for ACT. You choose which of the agent's own recorded LOG/RECALL
answers to reinforce (you never write examples yourself), how many of each, and the LoRA
configuration, jointly. Prefer answers from steps that led to progress, that consulted memory
before writing, and short precise notes over long dumps.

Reply with one JSON object:
{"rationale": "<one line>",
 "selection": {"routines": ["log", "recall"], "envs": [], "min_episode_progression": 0.0,
               "progress_within_steps": null, "require_valid_action": false,
               "require_consult_before_write": false, "require_memory_op": false,
               "exclude_output_regex": null, "min_output_chars": 1, "max_output_chars": null},
 "composition": {"per_routine": {"log": 64, "recall": 64}, "per_env": {}},
 "lora": {"rank": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj"], "epochs": 1,
          "learning_rate": 0.0002}}"""


@dataclass
class MemoryTrackOptions:
    eval: EvalOptions
    meta_model: str = "embedded"
    meta_model_name: str | None = None
    meta_api_key_env: str | None = DEFAULT_API_KEY_ENV  # the variable holding the meta server's key
    trials: int = 2
    base_model: str = "embedded"  # what the trainer fine-tunes: "embedded" or a local model folder
    train_seeds: str = "+1000"  # the trace pool: each env's report seeds + 1000
    selection_seeds: str = "+500"  # where trials are judged; --seeds (or the suite's) is where gains are reported
    gate: Gate = "mean"
    meta_context_tokens: int = 6000
    meta_max_tokens: int = 1024
    samples_shown: int = 12
    leaderboards_dir: str | None = "leaderboards"


@dataclass
class Decision:
    selection: SelectionRules
    composition: Composition
    lora: LoraTrainingConfig
    rationale: str
    fallback: str | None = None  # why the default decision replaced an unusable reply

    def to_json(self) -> dict[str, Any]:
        return {"selection": asdict(self.selection), "composition": asdict(self.composition),
                "lora": asdict(self.lora), "rationale": self.rationale, "fallback": self.fallback}  # fmt: skip


def parse_decision(reply: str) -> Decision:
    """The meta-LLM's decision; an unusable reply gives the default decision, marked as fallback."""
    try:
        data = parse_json_object(reply)
        return Decision(SelectionRules.from_mapping(data.get("selection") or {}),
                        Composition.from_mapping(data.get("composition") or {}),
                        LoraTrainingConfig.from_mapping(data.get("lora") or {}),
                        str(data.get("rationale", "")))  # fmt: skip
    except (MetaReplyError, ValueError, TypeError) as error:
        return Decision(SelectionRules(), Composition(), LoraTrainingConfig(), "", fallback=str(error)[:300])


def _sample_text(candidates: list[Candidate], count: int) -> str:
    if not candidates:
        return "(no memory-routine calls recorded)"
    stride = max(1, len(candidates) // count)
    lines = []
    for c in candidates[::stride][:count]:
        question = c.messages[-1]["content"] if c.messages else ""
        lines.append(f"- {c.routine} | {c.env}/{c.task} seed {c.seed} step {c.step} | episode progression "
                     f"{100 * c.episode_progression:.1f}% | next gain in {c.progress_gain_within} steps | "
                     f"consulted before write: {c.consulted_before_write}\n  asked: {clip(question, 160)!r}\n"
                     f"  answered: {clip(c.output, 200)!r}")  # fmt: skip
    return "\n".join(lines)


def build_prompt(code: str, pool: list[Candidate], rounds: list[MemoryTrial], options: MemoryTrackOptions) -> list[dict[str, str]]:
    budget = options.meta_context_tokens * CHARS_PER_TOKEN - len(SYSTEM_PROMPT)
    by_kind: dict[str, int] = {}
    for c in pool:
        by_kind[f"{c.routine}/{c.env}"] = by_kind.get(f"{c.routine}/{c.env}", 0) + 1
    history = "\n".join(
        f"- trial {r.trial}: {r.data['examples']} examples {r.data['by_routine']}, LoRA {r.decision['lora']}, "
        f"progression {percent(r.selection.progression if r.selection else None)}, write/search "
        f"{number(r.selection.write_to_search_ratio if r.selection else None)}, delta vs no adapter {delta_text(r.comparison)}"
        for r in rounds
    ) or "(none yet)"  # fmt: skip
    samples = _sample_text(pool, options.samples_shown)
    code_text = clip(code, max(800, budget // 3))
    user = (f"## Scaffold code\n```python\n{code_text}\n```\n\n## Pool\neligible calls: {json.dumps(by_kind)}\n\n"
            f"## Sampled calls\n{clip(samples, max(800, budget - len(code_text) - len(history) - 600))}\n\n"
            f"## Earlier trials\n{history}\n\nReturn your decision as one JSON object.")  # fmt: skip
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def train_adapter(data: Path, base: str, out: Path, config: LoraTrainingConfig) -> dict[str, Any]:
    """`harness train` in its own process (the trainer image's entry point)."""
    config_path = out.parent / "lora.yaml"
    config_path.write_text(yaml.safe_dump(asdict(config)))
    completed = subprocess.run(
        [sys.executable, "-m", "harness.cli", "train", str(data), "--base", base, "--out", str(out),
         "--config", str(config_path)], capture_output=True, text=True,
    )  # fmt: skip
    (out.parent / "train.log").write_text(completed.stdout + completed.stderr)
    if completed.returncode != 0:
        raise TrackError(f"training failed: {completed.stderr.strip()[-1500:]}")
    report: dict[str, Any] = read_json(out / "training_report.json")
    return report


def run_memory_track(options: MemoryTrackOptions, run_id: str | None = None, resume: bool = False) -> Path:
    submission = check_submission(options.eval.submission)
    root = track_root(options.eval.runs_dir, run_id, submission.name, "memory", resume)
    _, _, split = split_seeds(options.eval, options.selection_seeds, options.train_seeds)
    fresh = MemoryTrackRecord(created=now(), seeds=split, gate=options.gate, options={
        "submission": str(submission.directory), "submission_name": submission.name, "suite": options.eval.suite,
        "trials": options.trials})  # fmt: skip
    state = TrackState(root, fresh, resume)
    pool_run, _ = evaluate(options.eval, submission.directory, root, "pool", resume, "memory", seeds=options.train_seeds, adapter=None)
    baseline_run, baseline = evaluate(options.eval, submission.directory, root, "baseline", resume, "memory",
                                      seeds=options.selection_seeds, adapter=None)  # fmt: skip
    state.record.baseline = RunFigures.of(str(baseline_run.root), baseline)
    pool = candidates_from_runs([pool_run])
    code = (submission.directory / submission.scaffold_file).read_text()
    with meta_model(options.meta_model, options.meta_model_name, options.meta_max_tokens, options.meta_api_key_env) as meta:
        while len(state.record.rounds) < options.trials:
            trial = len(state.record.rounds) + 1
            folder = root / "trials" / str(trial)
            shutil.rmtree(folder, ignore_errors=True)  # a trial cut short is redone whole
            folder.mkdir(parents=True)
            state.add_round(_run_trial(trial, folder, meta, code, pool, pool_run, baseline_run, state.record, options))
    _report(state, root, options, submission.directory, resume)
    _finish(state, root, options, submission.directory)
    return root


def _run_trial(trial: int, folder: Path, meta: MetaModel, code: str, pool: list[Candidate], pool_run: RunDir,
               baseline_run: RunDir, record: MemoryTrackRecord, options: MemoryTrackOptions) -> MemoryTrial:  # fmt: skip
    reply = meta.ask(build_prompt(code, pool, record.rounds, options))
    atomic_write_json(folder / "meta.json", meta.calls[-1].to_json())
    decision = parse_decision(reply)
    atomic_write_json(folder / "decision.json", decision.to_json())
    data = build_sft_data([pool_run], decision.selection, decision.composition, folder / "data.jsonl")
    result = MemoryTrial(trial=trial, decision=decision.to_json(), data=data)
    if data["examples"] == 0:
        result.skipped = result.reason = "the selection kept no example: nothing to train"
        return result
    adapter = folder / "adapter"
    result.training = train_adapter(folder / "data.jsonl", options.base_model, adapter, decision.lora)
    # the adapter answers the routines it was trained on, the rest stays on the base model
    run, results = evaluate(options.eval, Path(options.eval.submission), folder, "run", False, "memory",
                            seeds=options.selection_seeds, adapter=str(adapter),
                            adapter_routines=tuple(decision.selection.routines))  # fmt: skip
    result.adapter, result.selection = str(adapter), RunFigures.of(str(run.root), results)
    result.comparison = paired_comparison(baseline_run, run)
    assert record.baseline is not None
    result.passed_gate, result.reason = gate_verdict(record.gate, results.overall.progression_mean,
                                                     record.baseline.progression, result.comparison)  # fmt: skip
    return result


def _best(trials: list[MemoryTrial]) -> MemoryTrial | None:
    """The trial that passed the gate with the highest selection progression (fewer writes per search on a tie)."""
    ranked = [(t.selection.progression or 0.0, -(t.selection.write_to_search_ratio or 0.0), t)
              for t in trials if t.passed_gate and t.selection is not None]
    return max(ranked, key=lambda r: r[:2])[2] if ranked else None


def _report(state: TrackState[MemoryTrackRecord], root: Path, options: MemoryTrackOptions, submission: Path, resume: bool) -> None:
    """The published figures: no adapter and the chosen adapter, on the report seeds."""
    best = _best(state.record.rounds)
    state.record.report = held_out_report(options.eval, root, resume, "memory-report", (submission, {"adapter": None}),
                                          (submission, {"adapter": best.adapter, "adapter_routines": _trained_routines(best)})
                                          if best else None,
                                          best.trial if best else None, start_id="baseline")  # fmt: skip
    state.save()


TRIAL_HEADERS = ["trial", "examples (log / recall)", "LoRA (r, alpha, modules, epochs, lr)", "selection %",
                 "write/search", "consult-before-write", "memory growth chars/step", "delta vs no adapter [95% CI]",
                 "gate", "report %", "note"]  # fmt: skip


def _figures_cells(figures: RunFigures | None) -> list[str]:
    if figures is None:
        return ["-", "-", "-", "-"]
    return [percent(figures.progression), number(figures.write_to_search_ratio), number(figures.consult_before_write),
            number(figures.growth_chars_per_step, 1)]  # fmt: skip


def _finish(state: TrackState[MemoryTrackRecord], root: Path, options: MemoryTrackOptions, submission: Path) -> None:
    record, report = state.record, state.record.report
    assert report is not None
    best = _best(record.rounds)
    rows: list[list[Any]] = [["none (base only)", "-", "-", *_figures_cells(record.baseline), "-", "-", percent(report.baseline.progression), "baseline"]]
    for r in record.rounds:
        lora = r.decision["lora"]
        note = r.skipped or ("fallback decision: " + r.decision["fallback"] if r.decision["fallback"] else r.decision["rationale"])
        rows.append([
            r.trial, f"{r.data['by_routine'].get('log', 0)} / {r.data['by_routine'].get('recall', 0)}",
            f"{lora['rank']}, {lora['alpha']}, {'+'.join(lora['target_modules'])}, {lora['epochs']}, {lora['learning_rate']:g}",
            *_figures_cells(r.selection), delta_text(r.comparison), "-" if r.skipped else ("passed" if r.passed_gate else "failed"),
            percent(report.best.progression) if best is not None and r.trial == best.trial else "-", note,
        ])  # fmt: skip
    note = (f"Selection seeds {record.seeds.selection} decide (gate: {record.gate}); report seeds {record.seeds.report} "
            f"were used for nothing else; the pool's training seeds are {record.seeds.train}. Published gain (report "
            f"seeds, paired): {delta_text(report.comparison) if report.comparison else 'none (no trial passed the gate)'}.")  # fmt: skip
    write_table(root / "trials.md", f"Memory track {root.name}", TRIAL_HEADERS, rows, note)
    atomic_write_json(root / "trials.json", {"seeds": record.seeds.model_dump(), "gate": record.gate,
                                             "baseline": record.baseline.model_dump(mode="json") if record.baseline else None,
                                             "trials": [r.model_dump(mode="json") for r in record.rounds],
                                             "report": report.model_dump(mode="json")})  # fmt: skip
    if best is not None and best.adapter and best.selection:
        _write_best_submission(root / "best", submission, best)
    record.status, record.best_round = "complete", best.trial if best else None
    state.save()
    publish_row(options.leaderboards_dir, table_name("memory", options.eval), {
        "track": root.name, "submission": record.options["submission_name"], "gate": record.gate,
        "trials": len(record.rounds), "best trial": best.trial if best else "none passed",
        "report no adapter %": percent(report.baseline.progression), "report best %": percent(report.best.progression),
        "report gain [95% CI]": delta_text(report.comparison) if report.comparison else "+0.0 (no adapter kept)",
        "write/search before -> after": f"{number(report.baseline.write_to_search_ratio)} -> {number(report.best.write_to_search_ratio)}",
    }, MEMORY_ROW_HEADERS)  # fmt: skip


MEMORY_ROW_HEADERS = ["track", "submission", "gate", "trials", "best trial", "report no adapter %", "report best %",
                      "report gain [95% CI]", "write/search before -> after"]  # fmt: skip


def _trained_routines(trial: MemoryTrial) -> tuple[str, ...]:
    """The routines a trial's adapter was trained on (and answers)."""
    return tuple(trial.decision.get("selection", {}).get("routines") or ("log", "recall"))


def _write_best_submission(folder: Path, submission: Path, best: MemoryTrial) -> None:
    """The submission with the chosen adapter, naming the base model its server really served."""
    assert best.adapter is not None and best.selection is not None
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(submission, folder, ignore=shutil.ignore_patterns("__pycache__", "adapter"))
    shutil.copytree(best.adapter, folder / "adapter", ignore=shutil.ignore_patterns("*.gguf"))
    config = yaml.safe_load((folder / "submission.yaml").read_text())
    served = read_run(best.selection.run).record.model
    config.update({"name": f"{config['name']}-memory-t{best.trial}", "parent": config["name"],
                   "model": {"base": served.name, "adapter": "adapter/", "adapter_routines": list(_trained_routines(best)),
                             "adapter_hash": served.adapter_hash}})  # fmt: skip
    (folder / "submission.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
