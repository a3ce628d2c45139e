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
from harness.report.tables import number, percent
from harness.runs.layout import RunDir, atomic_write_json, read_json
from harness.runs.stats import mean_defined
from harness.runs.suites import load_suite, narrow, parse_seeds
from harness.tracks.common import (
    TrackError,
    TrackState,
    evaluate,
    meta_model,
    paired_comparison,
    publish_row,
    track_root,
    write_table,
)
from harness.tracks.eval import EvalOptions
from harness.tracks.meta import CHARS_PER_TOKEN, MetaModel, MetaReplyError, clip, parse_json_object
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
    trials: int = 2
    base_model: str = "embedded"  # what the trainer fine-tunes: "embedded" or a local model folder
    train_seeds: str | None = None  # default: the evaluation seeds + 1000
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


def build_prompt(code: str, pool: list[Candidate], rounds: list[dict[str, Any]], options: MemoryTrackOptions) -> list[dict[str, str]]:
    budget = options.meta_context_tokens * CHARS_PER_TOKEN - len(SYSTEM_PROMPT)
    by_kind: dict[str, int] = {}
    for c in pool:
        by_kind[f"{c.routine}/{c.env}"] = by_kind.get(f"{c.routine}/{c.env}", 0) + 1
    history = "\n".join(
        f"- trial {r['trial']}: {r['data']['examples']} examples {r['data']['by_routine']}, LoRA {r['decision']['lora']}, "
        f"progression {percent(r.get('progression'))}, write/search {number(r.get('write_to_search_ratio'))}, "
        f"delta vs no adapter {percent(r.get('delta'))}" for r in rounds if "data" in r
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


def _summary(results: dict[str, Any]) -> dict[str, Any]:
    envs = results["envs"].values()

    def mean(key: str) -> float | None:
        return mean_defined(s[key] for s in envs)

    return {"progression": results["overall"]["progression_mean"], "write_to_search_ratio": mean("write_to_search_ratio"),
            "consult_before_write": mean("consult_before_write"), "growth_chars_per_step": mean("growth_chars_per_step")}  # fmt: skip


def run_memory_track(options: MemoryTrackOptions, run_id: str | None = None, resume: bool = False) -> Path:
    submission = check_submission(options.eval.submission)
    root = track_root(options.eval.runs_dir, run_id, submission.name, "memory", resume)
    suite = narrow(load_suite(options.eval.suite), tuple(options.eval.env),
                   parse_seeds(options.eval.seeds) if options.eval.seeds else None, options.eval.max_steps)  # fmt: skip
    eval_seeds = sorted({seed for plan in suite.envs for seed in plan.seeds})
    train_seeds = parse_seeds(options.train_seeds) if options.train_seeds else tuple(s + 1000 for s in eval_seeds)
    if set(train_seeds) & set(eval_seeds):
        raise TrackError(f"training seeds {sorted(set(train_seeds) & set(eval_seeds))} are evaluation seeds: "
                         "no training on the test seeds")  # fmt: skip
    state = TrackState(root, "memory", {"submission": str(submission.directory), "submission_name": submission.name,
                                        "suite": options.eval.suite, "eval_seeds": eval_seeds,
                                        "train_seeds": list(train_seeds), "trials": options.trials}, resume)  # fmt: skip
    seeds_text = ",".join(map(str, train_seeds))
    pool_run, _ = evaluate(options.eval, submission.directory, root, "pool", resume, "memory", seeds=seeds_text, adapter=None)
    baseline_run, baseline = evaluate(options.eval, submission.directory, root, "baseline", resume, "memory", adapter=None)
    pool = candidates_from_runs([pool_run])
    code = (submission.directory / submission.scaffold_file).read_text()
    with meta_model(options.meta_model, options.meta_model_name, options.meta_max_tokens) as meta:
        while len(state.rounds) < options.trials:
            trial = len(state.rounds) + 1
            folder = root / "trials" / str(trial)
            shutil.rmtree(folder, ignore_errors=True)  # a trial cut short is redone whole
            folder.mkdir(parents=True)
            state.add_round(_run_trial(trial, folder, meta, code, pool, pool_run, baseline_run, state.rounds, options))
    _finish(state, root, options, _summary(baseline), submission.directory)
    return root


def _run_trial(trial: int, folder: Path, meta: MetaModel, code: str, pool: list[Candidate], pool_run: RunDir,
               baseline_run: RunDir, rounds: list[dict[str, Any]], options: MemoryTrackOptions) -> dict[str, Any]:  # fmt: skip
    reply = meta.ask(build_prompt(code, pool, rounds, options))
    atomic_write_json(folder / "meta.json", meta.calls[-1].to_json())
    decision = parse_decision(reply)
    atomic_write_json(folder / "decision.json", decision.to_json())
    data = build_sft_data([pool_run], decision.selection, decision.composition, folder / "data.jsonl")
    record: dict[str, Any] = {"trial": trial, "decision": decision.to_json(), "data": data}
    if data["examples"] == 0:
        return {**record, "skipped": "the selection kept no example: nothing to train"}
    adapter = folder / "adapter"
    record["training"] = train_adapter(folder / "data.jsonl", options.base_model, adapter, decision.lora)
    run, results = evaluate(options.eval, Path(options.eval.submission), folder, "run", False, "memory", adapter=str(adapter))
    comparison = paired_comparison(baseline_run, run)
    return {**record, **_summary(results), "adapter": str(adapter), "run": str(run.root),
            "delta": comparison["delta_mean"], "comparison": comparison}  # fmt: skip


TRIAL_HEADERS = ["trial", "examples (log / recall)", "LoRA (r, alpha, modules, epochs, lr)", "progression %",
                 "write/search", "consult-before-write", "memory growth chars/step", "delta vs no adapter [95% CI]", "note"]  # fmt: skip


def _finish(state: TrackState, root: Path, options: MemoryTrackOptions, baseline: dict[str, Any], submission: Path) -> None:
    rows = [["none (base only)", "-", "-", percent(baseline["progression"]), number(baseline["write_to_search_ratio"]),
             number(baseline["consult_before_write"]), number(baseline["growth_chars_per_step"], 1), "-", "baseline"]]  # fmt: skip
    for r in state.rounds:
        lora = r["decision"]["lora"]
        comparison = r.get("comparison")
        rows.append([
            r["trial"], f"{r['data']['by_routine'].get('log', 0)} / {r['data']['by_routine'].get('recall', 0)}",
            f"{lora['rank']}, {lora['alpha']}, {'+'.join(lora['target_modules'])}, {lora['epochs']}, {lora['learning_rate']:g}",
            percent(r.get("progression")), number(r.get("write_to_search_ratio")), number(r.get("consult_before_write")),
            number(r.get("growth_chars_per_step"), 1),
            f"{100 * comparison['delta_mean']:+.1f} [{100 * comparison['delta_ci95'][0]:+.1f}, {100 * comparison['delta_ci95'][1]:+.1f}]" if comparison else "-",
            r.get("skipped") or ("fallback decision: " + r["decision"]["fallback"] if r["decision"]["fallback"] else r["decision"]["rationale"]),
        ])  # fmt: skip
    write_table(root / "trials.md", f"Memory track {root.name}", TRIAL_HEADERS, rows)
    atomic_write_json(root / "trials.json", {"baseline": baseline, "trials": state.rounds})
    trained = [r for r in state.rounds if "adapter" in r]
    best = max(trained, key=lambda r: (r.get("progression") or 0.0, -(r.get("write_to_search_ratio") or 0.0)), default=None)
    if best is not None:
        best_submission = root / "best"
        shutil.rmtree(best_submission, ignore_errors=True)
        shutil.copytree(submission, best_submission, ignore=shutil.ignore_patterns("__pycache__", "adapter"))
        shutil.copytree(best["adapter"], best_submission / "adapter", ignore=shutil.ignore_patterns("*.gguf"))
        config = yaml.safe_load((best_submission / "submission.yaml").read_text())
        served = RunDir(Path(best["run"])).read_run()["model"]  # the base model really used, as its server named it
        config.update({"name": f"{config['name']}-memory-t{best['trial']}", "parent": config["name"],
                       "model": {"base": served["name"], "adapter": "adapter/", "adapter_routines": ["log", "recall"],
                                 "adapter_hash": served.get("adapter_hash")}})  # fmt: skip
        (best_submission / "submission.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    state.data.update({"status": "complete", "best_trial": best["trial"] if best else None})
    state.save()
    publish_row(options.leaderboards_dir, f"memory-{Path(options.eval.suite).stem}", {
        "track": root.name, "submission": state.data["options"]["submission_name"], "trials": len(state.rounds),
        "best trial": best["trial"] if best else "-", "no adapter %": percent(baseline["progression"]),
        "best %": percent(best.get("progression")) if best else "-",
        "write/search before -> after": f"{number(baseline['write_to_search_ratio'])} -> {number(best.get('write_to_search_ratio')) if best else '-'}",
    }, ["track", "submission", "trials", "best trial", "no adapter %", "best %", "write/search before -> after"])  # fmt: skip
