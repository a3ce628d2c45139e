"""Condensing a run's traces for a reviewer (the meta-LLM) within an explicit budget.

What a reviewer needs first is kept first; the rest fills what the budget leaves:
1. per episode, always: outcome, progression, where progress stalled (longest stretch
   without progression gain), repeated actions (longest run of one action, most common
   action), invalid actions, memory growth, writes/searches, refused memory operations;
2. the memory directory: every file with its size, then an excerpt (head and tail) of each;
3. sampled steps: the first, those where progression rose, the last, and evenly spaced others,
   each with the observation's head, the model's answers per routine and the memory operations.
The budget is shared evenly between episodes; a section that does not fit is cut and says so.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from harness.runs.layout import MEMORY_DIR, RunDir
from harness.runs.read import read_run
from harness.runs.records import EpisodeRecord, StepRecord
from harness.tracks.meta import clip


def _longest_stall(steps: list[StepRecord]) -> tuple[int, int]:
    """(length, first index) of the longest stretch of steps without a progression gain."""
    best = (0, 0)
    start, last = 0, -1.0
    for index, step in enumerate(steps):
        if step.progression > last:
            start, last = index, step.progression
        if index - start + 1 > best[0]:
            best = (index - start + 1, start)
    return best


def _longest_repeat(actions: list[str]) -> tuple[int, str]:
    best, run = (0, ""), 0
    for index, action in enumerate(actions):
        run = run + 1 if index and actions[index - 1] == action else 1
        if run > best[0]:
            best = (run, action)
    return best


def episode_summary(episode: EpisodeRecord, steps: list[StepRecord]) -> str:
    actions = [s.action for s in steps if s.action]
    stall, stall_start = _longest_stall(steps)
    repeat, repeated = _longest_repeat(actions)
    common = Counter(actions).most_common(1)
    memory = episode.memory
    lines = [
        f"## {episode.env}/{episode.task} seed {episode.seed}: {episode.status}, "
        f"{episode.steps} steps, progression {100 * episode.progression:.1f}%",
        f"- longest stall: {stall} steps without progress from step {stall_start}",
        f"- longest repeat: {repeat}x {repeated!r}"
        + (f"; most common action {common[0][0]!r} ({100 * common[0][1] / len(actions):.0f}% of steps)" if common else ""),
        f"- invalid actions: {episode.invalid_actions}",
        f"- memory: {memory.chars_final} chars in {memory.files_final} files, "
        f"{memory.growth_chars_per_step:.1f} chars/step, {memory.writes} writes, "
        f"{memory.searches} searches, {memory.reads} reads, refused ops {memory.refused_ops}",
    ]  # fmt: skip
    if episode.error:
        lines.append(f"- error ({episode.error_kind}): {clip(episode.error, 600)}")
    return "\n".join(lines)


def memory_listing(memory_dir: Path, budget: int) -> str:
    files = sorted(p for p in memory_dir.rglob("*") if p.is_file()) if memory_dir.is_dir() else []
    if not files:
        return "memory directory: (empty)"
    lines = ["memory directory:"] + [f"- {p.relative_to(memory_dir)} ({p.stat().st_size} bytes)" for p in files]
    text = "\n".join(lines)
    share = max(0, (budget - len(text)) // len(files))
    for path in files:
        if share < 120:
            break
        content = path.read_text(errors="replace")
        text += f"\n--- {path.relative_to(memory_dir)} ---\n{clip(content, share - 40)}"
    return text


def _step_text(step: StepRecord, observation_chars: int = 300) -> str:
    parts = [f"step {step.index}: action {step.action!r} (answer {str(step.raw_action)[:60]!r}"
             f"{'' if step.valid else ', INVALID'}), reward {step.reward}, progression {step.progression:.3f}",
             "  observation: " + clip(step.observation, observation_chars).replace("\n", "\n  ")]  # fmt: skip
    for call in step.llm_calls:
        parts.append(f"  {call.routine} -> {clip(str(call.output), 160)!r}")
    for op in step.memory_ops:
        pattern = f" {op.pattern!r}" if op.pattern else ""
        result = "ok" if op.ok else f"REFUSED {op.error}"
        parts.append(f"  memory {op.op} {op.path or ''}{pattern} (+{op.chars_written}/-{op.chars_read} chars) {result}")
    return "\n".join(parts)


def sample_steps(steps: list[StepRecord], budget: int) -> str:
    if not steps:
        return "(no steps)"
    chosen: list[int] = [0]
    chosen += [i for i in range(1, len(steps)) if steps[i].progression > steps[i - 1].progression]
    chosen.append(len(steps) - 1)
    stride = max(1, len(steps) // 12)
    chosen += list(range(0, len(steps), stride))
    seen: set[int] = set()
    texts = []
    used = 0
    for index in chosen:  # priority order: first, progress, last, then spaced
        if index in seen:
            continue
        seen.add(index)
        text = _step_text(steps[index])
        if used + len(text) > budget:
            break
        texts.append((index, text))
        used += len(text)
    omitted = len(steps) - len(texts)
    return "\n".join(t for _, t in sorted(texts)) + (f"\n({omitted} other steps not shown)" if omitted else "")


def digest_run(run_dir: RunDir, budget_chars: int) -> str:
    """The whole run condensed to about `budget_chars` characters."""
    run = read_run(run_dir.root)
    episodes = run.episodes()
    if not episodes:
        return "(the run has no finished episodes)"
    share = max(600, budget_chars // len(episodes))
    sections = []
    for episode in episodes:
        steps = run.steps(episode)
        summary = episode_summary(episode, steps)
        memory = memory_listing(run.episode_folder(episode) / MEMORY_DIR, max(200, (share - len(summary)) // 3))
        remaining = share - len(summary) - len(memory)
        sections.append(f"{summary}\n{memory}\nsteps:\n{sample_steps(steps, max(300, remaining))}")
    return clip("\n\n".join(sections), budget_chars)
