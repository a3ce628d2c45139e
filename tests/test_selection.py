"""Honest selection: seed splits, derived suite names, the gates."""

from pathlib import Path

import pytest

from harness.runs.suites import load_suite, narrow, rederived, seed_option, with_seeds
from harness.tracks.common import TrackError, split_seeds
from harness.tracks.eval import EvalOptions
from harness.tracks.records import Paired, gate_verdict


def test_a_seed_offset_shifts_each_envs_own_seeds_and_says_so_in_the_name() -> None:
    standard = load_suite("standard")
    held_out = with_seeds(standard, "+500")
    assert held_out.name == "standard[seeds=+500]"
    assert {p.env: p.seeds for p in held_out.envs}["crafter"] == tuple(range(500, 510))
    assert {p.env: p.seeds for p in held_out.envs}["minihack"] == tuple(range(500, 505))
    assert seed_option("1,3") == ((1, 3), 0) and seed_option(None) == (None, 0)
    with pytest.raises(ValueError, match="positive"):
        seed_option("+0")


@pytest.mark.parametrize("envs, seeds, max_steps, offset", [
    ((), None, None, 0), (("crafter",), (0,), 5, 0), (("minihack", "nethack"), None, 50, 500), ((), (1, 3, 7), None, 0),
])  # fmt: skip
def test_a_derived_name_rebuilds_the_same_suite(envs: tuple[str, ...], seeds: tuple[int, ...] | None,
                                                max_steps: int | None, offset: int) -> None:  # fmt: skip
    suite = narrow(load_suite("standard"), envs, seeds, max_steps, offset)
    assert rederived(suite.name).to_json()["envs"] == suite.to_json()["envs"]


def test_selection_report_and_training_seeds_must_be_disjoint() -> None:
    base = EvalOptions(submission="submissions/automem-seed", suite="smoke")
    selection, report, split = split_seeds(base, "+500", "+1000")
    assert (split.selection, split.report, split.train) == ([500], [0], [1000])
    assert selection.name == "smoke[seeds=+500]" and report.name == "smoke"
    with pytest.raises(TrackError, match="report and selection seeds share"):
        split_seeds(base, "0")
    with pytest.raises(TrackError, match="selection and training seeds share"):
        split_seeds(EvalOptions(submission="x", suite="smoke", seeds="1"), "+500", "500")


def test_the_mean_gate_is_the_papers_rule() -> None:
    assert gate_verdict("mean", 0.2, 0.1, None)[0]
    kept, reason = gate_verdict("mean", 0.1, 0.1, None)
    assert not kept and "does not beat" in reason


def test_the_ci_gate_needs_an_interval_above_zero() -> None:
    assert gate_verdict("ci", 0.3, 0.1, Paired(delta_mean=0.2, delta_ci95=[0.05, 0.3], pairs=5))[0]
    kept, reason = gate_verdict("ci", 0.3, 0.1, Paired(delta_mean=0.2, delta_ci95=[-0.05, 0.4], pairs=5))
    assert not kept and "lower bound -5.0" in reason  # the mean improved; the gate still refuses
    kept, reason = gate_verdict("ci", 0.3, 0.1, Paired(delta_mean=0.2, delta_ci95=[0.2, 0.2], pairs=1))
    assert not kept and "two paired" in reason


def test_stored_track_records_match_their_schema() -> None:
    from harness.runs.read import read_record
    from harness.tracks.records import MemoryTrackRecord, ScaffoldTrackRecord

    for model, path in ((ScaffoldTrackRecord, "scaffold-smoke-automem-seed"), (MemoryTrackRecord, "memory-smoke-automem-seed")):
        record = read_record(model, Path("leaderboards/tracks/runs") / path / "track.json")
        assert record.status == "complete" and record.report is not None
        assert set(record.seeds.selection).isdisjoint(record.seeds.report)


def test_a_track_record_of_another_major_version_is_not_resumed(tmp_path: Path) -> None:
    import json

    from harness.tracks.common import TrackState
    from harness.tracks.records import ScaffoldTrackRecord, SeedSplit

    (tmp_path / "track.json").write_text(json.dumps({"schema_version": "2.0", "kind": "scaffold"}))
    fresh = ScaffoldTrackRecord(created="now", options={}, seeds=SeedSplit(selection=[1], report=[0]))
    with pytest.raises(TrackError, match="schema version 2.0; this harness reads 1.x"):
        TrackState(tmp_path, fresh, resume=True)


def test_a_gate_says_when_its_seeds_are_too_few_to_detect_the_gain_it_measured() -> None:
    underpowered = Paired(delta_mean=0.02, delta_ci95=[-0.05, 0.09], pairs=4, mde=0.15)
    kept, reason = gate_verdict("mean", 0.3, 0.28, underpowered)
    assert kept and "detect 15.0 points at 80% power: too few seeds" in reason
    assert underpowered.power_flag() == " (MDE 15.0: too few seeds)"
    enough = Paired(delta_mean=0.2, delta_ci95=[0.1, 0.3], pairs=40, mde=0.05)
    assert enough.power_note() == "" and enough.power_flag() == ""
    assert "unknown" in gate_verdict("ci", 0.3, 0.1, Paired(delta_mean=0.2, delta_ci95=[0.05, 0.3], pairs=5))[1]
