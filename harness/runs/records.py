"""The run records, typed: one pydantic model per file of the run directory, versioned.

    RunRecord      run.json        what was run (everything that changes a result), its status
    StepRecord     steps.jsonl     one line per step: observation, action, calls, memory ops
    EpisodeRecord  episode.json    one episode's result; its presence marks the episode done
    Results        results.json    per env and overall, completeness and failures
    VerificationRecord verification.json  what `harness verify` found

Every file carries `schema_version` ("MAJOR.MINOR"). Readers accept any minor version of
their major (new keys are added freely, never renamed: unknown keys are kept) and refuse
another major with a message that says which harness reads it. Files written before
versioning are read as version 1.0. `harness.runs.read` is the only way modules read them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# 1.1: run.json suite.text; 1.2: chat calls' tools, tool calls, finish reason and sampling,
# memory ops' tool call and chat call, episode memory metrics by routine and model errors;
# 1.3: run.json isolation (the sandbox's limits), track.json candidates (how candidates ran);
# 1.4: episode tokens.prompt_reusable, results prefix_reuse per env;
# 1.5: step scaffold_state, episode resumes (mid-episode resume);
# 1.6: episode game (the score from the game's own log), chat calls' retries;
# 1.7: episode solved (MiniHack), run.json submission.answers, results solved_rate;
# 1.8: episode sampling, run.json sampling_used (the generation parameters the calls sent)
# 1.9: launches.jsonl, game log's unlocked achievements;
# 1.10: step scaffold_state_sha256 (a large state is kept in scaffold-state/, not the trace)
# 1.11: episode resumes' snapshot_step (the game restored from a snapshot of its process)
SCHEMA_VERSION = "1.11"
SCHEMA_MAJOR = 1

EpisodeStatus = Literal["completed", "truncated", "errored"]
FailureKind = Literal["scaffold", "request", "model", "env", "worker", "episode_timeout"]
RunStatus = Literal["running", "complete", "incomplete", "interrupted", "stopped"]


class Record(BaseModel):
    """Base of every record: keys beyond the schema are kept (add freely, never rename)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# -- steps.jsonl ------------------------------------------------------------------------------
class LLMCall(Record):
    """One chat call, verbatim: its input is a list of ids into messages.jsonl."""

    routine: str
    model: str | None
    adapter: str | None = None
    input: dict[str, list[str]] = Field(description='{"messages": [message ids]}')
    output: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    choices: list[str] | None = None
    error: str | None = None
    error_kind: FailureKind | None = None
    tools: str | None = Field(None, description="id of the tool list offered, in messages.jsonl")
    tool_calls: list[dict[str, Any]] | None = Field(None, description="the answer's tool calls, verbatim (OpenAI format)")
    finish_reason: str | None = None
    tool_mode: Literal["native", "json"] | None = Field(
        None, description="how the tools were offered: native tool calling, or a JSON answer constrained by a schema "
        "(then input holds the messages as sent and output the raw JSON; tool_calls are parsed from it)")
    sampling: dict[str, Any] | None = Field(None, description="max_tokens, temperature and other generation parameters sent")
    retries: int = Field(0, description="HTTP attempts beyond the first (the client's retries after a dropped "
                         "connection, a timeout, 429 or 5xx)")


class MemoryOpRecord(Record):
    """One memory operation; a successful append/write keeps its text (the folder can be rebuilt)."""

    op: str
    path: str | None
    pattern: str | None = None
    chars_written: int = 0
    chars_read: int = 0
    ok: bool
    error: str | None = None
    text: str | None = None
    tool_call_id: str | None = Field(None, description="the model's tool call that caused it (None: the scaffold's code)")
    call: int | None = Field(None, description="index, in this step's llm_calls, of the chat call whose answer made that tool call")


class StepTimes(Record):
    env: float = 0.0
    model: float = 0.0
    memory: float = 0.0
    scaffold: float = 0.0
    harness: float = 0.0


class StepRecord(Record):
    """One line of steps.jsonl. `action` is None on a step the scaffold never finished."""

    index: int
    observation: str
    action: str | None
    raw_action: str | None
    valid: bool
    reward: float
    done: bool
    truncated: bool = False
    progression: float
    llm_calls: list[LLMCall] = Field(default_factory=list)
    memory_ops: list[MemoryOpRecord] = Field(default_factory=list)
    memory_chars: int = 0
    time_s: StepTimes = Field(default_factory=StepTimes)
    scaffold_state: Any = Field(None, description="what the scaffold's state() hook returned after this step, "
                                "stored when it changed since the last step that stored it (agent.resume)")
    scaffold_state_sha256: str | None = Field(None, description="a changed state too large for the record: its "
                                              "SHA-256; the state is in the episode's scaffold-state/ slots")


# -- episode.json -----------------------------------------------------------------------------
class MemoryMetrics(Record):
    chars_final: int
    files_final: int
    growth_chars_per_step: float
    writes: int
    searches: int
    reads: int
    write_to_search_ratio: float | None
    consult_before_write: float | None
    refused_ops: int
    ops_by_routine: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="successful operations per kind, by the routine whose tool call asked ('scaffold': its own code)")
    model_errors: int = Field(0, description="refused operations a model's tool call asked for")


class Tokens(Record):
    prompt: int = 0
    completion: int = 0
    prompt_reusable: int | None = Field(None, description="prompt tokens that repeat the start of an earlier prompt of "
                                        "the episode: what a prefix cache could serve (runs.prefix; None: before 1.4)")  # fmt: skip


class EpisodeTimes(StepTimes):
    total: float = 0.0


class TraceBytes(Record):
    total: int = 0
    first_step: int = 0
    last_step: int = 0


class ResumeRecord(Record):
    """One restart of an episode's worker that found an earlier attempt's steps (agent.resume)."""

    from_step: int = Field(description="the step this attempt played first (0: restarted)")
    recorded_steps: int = Field(description="played steps the earlier attempt recorded")
    continued: bool = Field(description="false: the earlier attempt could not be continued and was set aside")
    reason: str
    replay_s: float = Field(0.0, description="seconds spent restoring the game and the memory")
    snapshot_step: int | None = Field(None, description="the game came back from its snapshot at this step "
                                                        "(envs.snapshot); none: replayed from its reset")


class EpisodeRecord(Record):
    schema_version: str = SCHEMA_VERSION
    env: str
    task: str
    seed: int
    status: EpisodeStatus
    error: str | None = None
    error_kind: FailureKind | None = None
    steps: int
    max_steps: int
    progression: float
    solved: bool | None = Field(None, description="MiniHack: the game ended with the task solved (from the "
                                "game's log); None for other games")  # fmt: skip
    reward_total: float
    invalid_actions: int
    memory: MemoryMetrics
    tokens: Tokens
    time_s: EpisodeTimes
    trace_bytes: TraceBytes = Field(default_factory=TraceBytes)
    sampling: dict[str, list[Any]] | None = Field(None, description="each generation parameter the episode's calls "
                                                  "sent, with its distinct values (None: recorded before 1.8)")  # fmt: skip
    final_observation: str = ""
    spec: dict[str, Any] = Field(default_factory=dict)
    salvaged: bool = False  # written by the scheduler from the records, not by the episode loop
    resumes: list[ResumeRecord] = Field(default_factory=list, description="each time the episode's worker "
                                        "started again over an earlier attempt's steps (mid-episode resume)")
    game: GameRecord | None = Field(None, description="the episode as the game's own log has it; the score comes "
                                    "from it (None: recorded before 1.6, or an infrastructure failure, unscored)")

    @property
    def key(self) -> str:
        return f"{self.env}/{self.task}/{self.seed}"


class DisagreementRecord(Record):
    """Where the worker's trace first disagrees with the game's own log."""

    step: int | None = Field(description="the step index (None: the episode as a whole)")
    problem: str


class GameRecord(Record):
    """The episode as the game's own log has it (envs.gamelog, runs.seal): the score's source."""

    log: str = Field("game.jsonl", description="the log's file in the episode folder")
    steps: int = Field(description="actions the game played in its last session")
    progression: float = Field(description="progression over the steps that count")
    solved: bool | None = Field(None, description="the task was solved (MiniHack's end status), apart from "
                                "progression; None for games without such an end")  # fmt: skip
    reward_total: float
    agrees: bool = Field(description="the trace and the game's log agree on every played step")
    disagreement: DisagreementRecord | None = None
    trace_progression: float = Field(0.0, description="the progression the worker's trace claims")
    unrecorded_steps: int = Field(0, description="steps the game played after the trace's last record "
                                  "(a worker killed mid-step): not counted")  # fmt: skip


# -- run.json ---------------------------------------------------------------------------------
# EpisodeRecord names GameRecord, defined after it: complete it now, at import (in the fork server),
# not on its first validation in every worker (~40 ms each).
EpisodeRecord.model_rebuild()


class SubmissionInfo(Record):
    name: str
    directory: str
    hash: str
    scaffold: str
    answers: str = Field("forgiving", description="how the harness read the scaffold's answers as actions "
                         "(submission.yaml `answers:`; agent.answers)")  # fmt: skip
    parent: str | None = None


class ModelInfo(Record):
    name: str
    endpoint: str
    kind: str | None = None
    adapter: str | None = None
    adapter_hash: str | None = None
    adapter_routines: list[str] = Field(default_factory=list)


class EnvPlanRecord(Record):
    tasks: list[str]
    seeds: list[int]
    max_steps: int


class TextRecord(Record):
    observation: str
    instructions: str


class SuiteRecord(Record):
    name: str
    description: str = ""
    source: str = ""
    envs: dict[str, EnvPlanRecord]
    text: TextRecord | None = Field(
        None, description="the observation and instructions variants the model read "
        "(None: recorded before variants existed, with the text of that time)")

    def episode_keys(self) -> list[str]:
        """Every planned episode as env/task/seed."""
        return [f"{env}/{task}/{seed}" for env, plan in sorted(self.envs.items())
                for task in plan.tasks for seed in plan.seeds]  # fmt: skip


class RunRecord(Record):
    schema_version: str = SCHEMA_VERSION
    run_id: str
    created: str
    harness_version: str
    submission: SubmissionInfo
    model: ModelInfo
    suite: SuiteRecord
    episodes_planned: int
    runtime: str
    isolation: dict[str, Any] | None = Field(None, description="the sandbox the scaffolds ran in (docker: no network, "
                                             "read-only, limits); None: unsandboxed (local, ray) or recorded before 1.3")  # fmt: skip
    machine: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    sampling: dict[str, Any] | None = Field(None, description="the chat defaults every call starts from, and the "
                                            "submission's declared longest answer against the server's context "
                                            "(None: recorded before it was)")  # fmt: skip
    sampling_used: dict[str, list[Any]] | None = Field(None, description="each generation parameter the run's calls "
                                                       "sent, with its distinct values, over every episode; written "
                                                       "when the run ends (None: before 1.8)")  # fmt: skip
    status: RunStatus = "running"
    servers: list[dict[str, str]] = Field(default_factory=list)
    stop_reason: str | None = None
    finished: str | None = None


# -- results.json -----------------------------------------------------------------------------
class EnvResults(Record):
    episodes: int
    errored_infrastructure: int = 0
    errored_scaffold: int = 0
    progression_mean: float | None
    progression_ci95: list[float] | None
    growth_chars_per_step: float | None
    write_to_search_ratio: float | None
    consult_before_write: float | None
    invalid_action_rate: float | None
    solved_rate: float | None = Field(None, description="share of episodes that solved the task (MiniHack; None elsewhere)")
    steps: int = 0
    tokens_prompt: int
    tokens_completion: int
    prefix_reuse: float | None = Field(None, description="share of prompt tokens a prefix cache could serve, per episode, "
                                       "then the mean (runs.prefix; None: recorded before 1.4)")  # fmt: skip
    time_s: dict[str, float] = Field(default_factory=dict)


class OverallResults(Record):
    progression_mean: float | None
    progression_ci95: list[float] | None


class FirstFailure(Record):
    episode: str
    error: str


class FailureSummary(Record):
    by_kind: dict[str, int] = Field(default_factory=dict)
    first: dict[str, FirstFailure] = Field(default_factory=dict)
    infrastructure: int = 0


class Results(Record):
    schema_version: str = SCHEMA_VERSION
    run_id: str
    submission: str | None
    submission_hash: str | None = None
    model: str | None
    adapter: str | None = None
    suite: str | None
    envs: dict[str, EnvResults]
    overall: OverallResults
    episodes_planned: int | None = None
    episodes_recorded: int = 0
    episodes_scored: int = 0
    complete: bool = False
    missing: list[str] = Field(default_factory=list)
    failures: FailureSummary = Field(default_factory=FailureSummary)
    stop_reason: str | None = None


# -- verification.json ------------------------------------------------------------------------
class MismatchRecord(Record):
    episode: str
    step: int | None
    problem: str


class VerificationRecord(Record):
    """What `harness verify` found; leaderboard rows cite it."""

    schema_version: str = SCHEMA_VERSION
    run_id: str
    verified: bool
    episodes_checked: int
    steps_replayed: int
    mismatches: list[MismatchRecord] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    checked_at: str = ""
    files: dict[str, str] = Field(default_factory=dict, description="every file of the run it checked (but this "
                                  "one), by relative path: its sha256 (runs.digest)")  # fmt: skip
    tree_digest: str | None = Field(default=None, description="the digest of `files`: the leaderboard recomputes it and refuses "
                                    "a run whose files changed since (None: recorded before 1.6)")  # fmt: skip
    reexecuted: bool = Field(default=False, description="the submission played every scored episode again against the "
                             "recorded answers and gave the recorded trace (report.rerun)")
    claimed: list[str] = Field(default_factory=list, description="recorded figures verify cannot re-derive without "
                               "the model (e.g. token counts, latencies): claims of the run, not checked")  # fmt: skip


def validated(model: type[Record], data: dict[str, Any]) -> dict[str, Any]:
    """`data` checked against its record and dumped with its schema_version (writers use this:
    a writer that drifts from the schema fails at once, not in some reader later)."""
    dumped: dict[str, Any] = model.model_validate(data).model_dump(mode="json")
    return dumped


RECORD_MODELS: dict[str, type[Record]] = {
    "run": RunRecord, "step": StepRecord, "episode": EpisodeRecord, "results": Results,
    "verification": VerificationRecord,
}  # fmt: skip


def json_schemas(models: dict[str, type[Record]] | None = None) -> dict[str, str]:
    """File name -> JSON Schema text of each record (harness.schema gathers every record)."""
    import json

    return {f"{name}.schema.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"
            for name, model in (models or RECORD_MODELS).items()}  # fmt: skip
