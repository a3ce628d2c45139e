"""`harness view RUN`: a static, self-contained HTML report of a run (works from file://).

index.html holds the run's table, plots (progression per seed, memory size over steps,
memory operations per step, write/search over time) and the episode list; each episode page
is a trajectory viewer: step list, observation, every LLM call (routine, model, input
messages verbatim, output), memory operations, and the memory directory's diff at each step.
Everything is read from the run directory.
"""

from __future__ import annotations

import difflib
import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from harness.memory.metrics import step_memory_counts  # noqa: E402
from harness.memory.replay import memory_states  # noqa: E402
from harness.report.tables import run_table  # noqa: E402
from harness.runs.layout import RunDir  # noqa: E402
from harness.runs.read import read_messages, read_run  # noqa: E402
from harness.runs.records import EpisodeRecord, StepRecord  # noqa: E402

STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #bbb;padding:4px 8px;font-size:14px}th{background:#eef}img{max-width:48%;margin:4px}
pre{background:#f6f6f6;padding:8px;white-space:pre-wrap;font-size:12px}.steps{float:left;width:14em;height:85vh;
overflow:auto}.detail{margin-left:15em}.steps a{display:block;padding:2px;cursor:pointer}.steps a.on{background:#dde}
.bad{color:#b00}.add{color:#070}.del{color:#b00}"""


Played = list[tuple[EpisodeRecord, list[StepRecord]]]


def _episode_key(episode: EpisodeRecord) -> str:
    return f"{episode.env}__{episode.task}__{episode.seed}"


def _plots(folder: Path, episodes: Played) -> list[str]:
    names = []
    figure, axis = plt.subplots(figsize=(6, 3))
    labels = [e.key for e, _ in episodes]
    axis.bar(range(len(labels)), [100 * e.progression for e, _ in episodes], color="#4a7")
    axis.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    axis.set_ylabel("progression %")
    axis.set_title("progression per seed")
    names.append(_save(figure, folder / "progression.png"))
    series: dict[str, tuple[str, str, Callable[[list[StepRecord]], list[float]]]] = {
        "memory_size.png": ("memory size over steps", "characters", lambda steps: [s.memory_chars for s in steps]),
        "memory_ops.png": ("memory operations per step", "operations", lambda steps: [len(s.memory_ops) for s in steps]),
        "write_search.png": ("write/search over time (cumulative)", "writes / searches", _cumulative_ratio),
    }  # fmt: skip
    for file_name, (title, ylabel, values) in series.items():
        figure, axis = plt.subplots(figsize=(6, 3))
        for episode, steps in episodes:
            axis.plot(values(steps), label=f"{episode.env}/{episode.seed}", linewidth=1)
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.set_ylabel(ylabel)
        if len(episodes) <= 10:
            axis.legend(fontsize=6)
        names.append(_save(figure, folder / file_name))
    return names


def _cumulative_ratio(steps: list[StepRecord]) -> list[float]:
    writes = consults = 0
    ratios = []
    for step in steps:
        counts = step_memory_counts(step.memory_ops)
        writes, consults = writes + counts.writes, consults + counts.consultations
        ratios.append(writes / consults if consults else float("nan"))
    return ratios


def _save(figure: Any, path: Path) -> str:
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path.name


def _memory_diffs(steps: list[StepRecord]) -> list[str]:
    diffs: list[str] = []
    before: dict[str, str] = {}
    for after in memory_states(s.memory_ops for s in steps):
        lines: list[str] = []
        for path in sorted(set(before) | set(after)):
            if before.get(path) != after.get(path):
                lines += difflib.unified_diff((before.get(path) or "").splitlines(), (after.get(path) or "").splitlines(),
                                              f"a/{path}", f"b/{path}", lineterm="", n=1)  # fmt: skip
        diffs.append("\n".join(lines))
        before = after
    return diffs


EPISODE_SCRIPT = """const data = JSON.parse(document.getElementById('data').textContent);
const esc = s => String(s ?? '').replace(/[&<>]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;'}[c]));
function show(i) {
  document.querySelectorAll('.steps a').forEach((a, j) => a.className = j === i ? 'on' : '');
  const s = data.steps[i];
  let h = `<h2>step ${s.index}</h2><p>action <b>${esc(s.action)}</b> (answer ${esc(JSON.stringify(s.raw_action))})`
        + `${s.valid ? '' : ' <span class=bad>INVALID</span>'}, reward ${s.reward}, progression ${s.progression}</p>`
        + `<h3>observation</h3><pre>${esc(s.observation)}</pre><h3>LLM calls</h3>`;
  for (const c of s.llm_calls) {
    const input = c.input.messages.map(id => data.messages[id]).map(m => `[${m.role}] ${m.content}`).join('\\n\\n');
    h += `<p><b>${esc(c.routine)}</b> model ${esc(c.model)} adapter ${esc(c.adapter)}, ${c.prompt_tokens}+${c.completion_tokens} tokens,`
       + ` ${c.latency_s}s</p><details><summary>input (${c.input.messages.length} messages)</summary><pre>${esc(input)}</pre></details>`
       + `<pre>${esc(c.output ?? c.error)}</pre>`;
  }
  h += '<h3>memory operations</h3><pre>' + (s.memory_ops.map(o => `${o.op} ${o.path ?? ''} ${o.pattern ? JSON.stringify(o.pattern) : ''}`
       + ` +${o.chars_written}/-${o.chars_read} ${o.ok ? 'ok' : 'REFUSED ' + o.error}`).join('\\n') || '(none)') + '</pre>';
  h += '<h3>memory diff</h3><pre>' + (esc(s.memory_diff) || '(no change)').split('\\n').map(l =>
       l.startsWith('+') ? `<span class=add>${l}</span>` : l.startsWith('-') ? `<span class=del>${l}</span>` : l).join('\\n') + '</pre>';
  document.getElementById('detail').innerHTML = h;
}
document.querySelectorAll('.steps a').forEach((a, i) => a.onclick = () => show(i));
if (data.steps.length) show(0);"""


def _episode_page(folder: Path, episode: EpisodeRecord, steps: list[StepRecord], target: Path) -> None:
    diffs = _memory_diffs(steps)
    shown = ("index", "action", "raw_action", "valid", "reward", "progression", "observation", "llm_calls", "memory_ops")
    data = {"messages": read_messages(folder),
            "steps": [{**s.model_dump(mode="json", include=set(shown)), "memory_diff": d} for s, d in zip(steps, diffs)]}
    items = "".join(f"<a>{s.index}: {html.escape(str(s.action))}{'' if s.valid else ' !'}</a>" for s in steps)
    title = f"{episode.env}/{episode.task} seed {episode.seed}"
    payload = json.dumps(data).replace("</", "<\\/")  # no "</script>" inside the data block
    page = (f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title><style>{STYLE}</style>"
            f"<p><a href='../index.html'>run</a></p><h1>{html.escape(title)}</h1><p>{episode.status}, {episode.steps} steps, "
            f"progression {100 * episode.progression:.1f}%</p><div class=steps>{items}</div><div class=detail id=detail></div>"
            f"<script type='application/json' id='data'>{payload}</script><script>{EPISODE_SCRIPT}</script>")  # fmt: skip
    target.write_text(page)


def build_view(run_dir: RunDir, out: Path | None = None) -> Path:
    """Write the report folder (default: RUN/view) and return its index.html."""
    run = read_run(run_dir.root)
    folder = out or run.root / "view"
    (folder / "episodes").mkdir(parents=True, exist_ok=True)
    info, results = run.record, run.results
    if results is None:
        raise FileNotFoundError(f"{run.root} has no results.json yet (the run has not finished aggregating)")
    episodes: Played = []
    for episode in run.episodes():
        steps = run.steps(episode)
        episodes.append((episode, steps))
        _episode_page(run.episode_folder(episode), episode, steps, folder / "episodes" / f"{_episode_key(episode)}.html")
    plots = _plots(folder, episodes) if episodes else []
    table = run_table(results, tablefmt="html").replace("<table>", "<table id='results'>", 1)
    rows = "".join(
        f"<tr><td><a href='episodes/{_episode_key(e)}.html'>{e.key}</a></td><td>{e.status}</td>"
        f"<td>{e.steps}</td><td>{100 * e.progression:.1f}</td><td>{e.memory.chars_final}</td></tr>"
        for e, _ in episodes
    )  # fmt: skip
    page = (f"<!doctype html><meta charset='utf-8'><title>run {html.escape(run.dir.run_id)}</title><style>{STYLE}</style>"
            f"<h1>{html.escape(str(results.submission))} on {html.escape(str(results.suite))}</h1>"
            f"<p>run <code>{html.escape(run.dir.run_id)}</code>, model {html.escape(str(results.model))}, "
            f"adapter {html.escape(str(results.adapter))}, harness {html.escape(info.harness_version)}</p>"
            f"{table}<div>{''.join(f'<img src={name!r} alt={name!r}>' for name in plots)}</div>"
            f"<h2>episodes</h2><table><tr><th>episode</th><th>status</th><th>steps</th><th>progression %</th>"
            f"<th>memory chars</th></tr>{rows}</table>")  # fmt: skip
    index = folder / "index.html"
    index.write_text(page)
    return index
