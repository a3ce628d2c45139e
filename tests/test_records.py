"""The typed run records: one schema, versioned, read through one API."""

import json
import shutil
from pathlib import Path

import pytest

from harness.runs import RecordError, SchemaVersionError, read_run
from harness.schema import all_json_schemas

STORED_RUN = Path("leaderboards/runs/smoke-automem-seed")


def test_the_exported_json_schemas_match_the_models() -> None:
    for name, text in all_json_schemas().items():
        path = Path("docs/schema") / name
        assert path.is_file() and path.read_text() == text, f"{path} is stale: run `harness schema`"


def test_a_stored_run_reads_as_typed_records() -> None:
    run = read_run(STORED_RUN)
    assert run.record.model.name == "smollm2-135m-instruct" and run.results is not None and run.results.complete
    episodes = run.episodes()
    assert [e.key for e in episodes] == ["crafter/crafter/0", "minihack/MazeWalk-9x9/0", "nethack/NetHackChallenge-v0/0"]
    steps = run.steps(episodes[0])
    assert len(steps) == episodes[0].steps and steps[0].llm_calls[0].routine == "log"


def test_files_written_before_versioning_read_as_version_1(tmp_path: Path) -> None:
    copy = shutil.copytree(STORED_RUN, tmp_path / "run")
    for path in [copy / "run.json", copy / "results.json", *copy.glob("episodes/*/*/*/episode.json")]:
        data = json.loads(path.read_text())
        data.pop("schema_version", None)
        path.write_text(json.dumps(data))
    run = read_run(copy)
    assert run.record.schema_version == "1.0" and all(e.schema_version == "1.0" for e in run.episodes())


@pytest.mark.parametrize("file", ["run.json", "results.json", "episodes/crafter/crafter/0/episode.json"])
def test_an_unknown_major_version_is_refused_with_what_to_do(tmp_path: Path, file: str) -> None:
    copy = shutil.copytree(STORED_RUN, tmp_path / "run")
    path = copy / file
    path.write_text(json.dumps({**json.loads(path.read_text()), "schema_version": "2.0"}))
    run = read_run(copy)
    with pytest.raises(SchemaVersionError, match="schema version 2.0; this harness reads 1.x"):
        _ = (run.record, run.results, run.episodes())


def test_a_record_missing_a_key_is_refused_by_name(tmp_path: Path) -> None:
    copy = shutil.copytree(STORED_RUN, tmp_path / "run")
    path = copy / "episodes/crafter/crafter/0/episode.json"
    data = json.loads(path.read_text())
    del data["progression"]
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match="progression"):
        read_run(copy).episodes()


def test_keys_added_by_newer_minor_versions_are_kept(tmp_path: Path) -> None:
    copy = shutil.copytree(STORED_RUN, tmp_path / "run")
    path = copy / "run.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "schema_version": "1.7", "future_key": 3}))
    assert read_run(copy).record.model_extra == {"future_key": 3}


def test_a_run_recorded_before_sampling_was_resumes_but_another_sampling_is_refused() -> None:
    from harness.runs.provenance import DEFAULT_SAMPLING, setup_differences

    run = read_run(STORED_RUN).record.model_dump(mode="json")
    assert setup_differences({**run, "sampling": None}, run) == []  # typed reads give None for an old run.json
    changed = {**run, "sampling": {**DEFAULT_SAMPLING, "temperature": 0.7}}
    assert [d.split(":")[0] for d in setup_differences(run, changed)] == ["sampling"]
