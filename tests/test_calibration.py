"""The random floor (issue 24): submissions/random plays without a model, reproducibly, and our
Crafter's random agent unlocks what the Crafter authors' random agent unlocks, as often."""

from pathlib import Path

import pytest

from harness.bench.calibrate import (
    binomial_two_sided_p,
    calibrate,
    crafter_episodes,
    holm,
    published_crafter,
    run_random_crafter,
)
from harness.runs.fingerprint import episode_fingerprint
from harness.runs.read import read_run
from harness.tracks.eval import EvalError, EvalOptions, run_eval


def test_the_binomial_test_and_holm_give_their_closed_form_answers() -> None:
    # two fair coins: P(0 heads) = P(2) = 1/4, P(1) = 1/2
    assert binomial_two_sided_p(0, 2, 0.5) == pytest.approx(0.5)
    assert binomial_two_sided_p(1, 2, 0.5) == pytest.approx(1.0)
    assert binomial_two_sided_p(0, 10, 0.0) == 1.0 and binomial_two_sided_p(1, 10, 0.0) == 0.0
    # 10 of 10 at rate 1/2: only 0 and 10 are as unlikely, each 2**-10
    assert binomial_two_sided_p(10, 10, 0.5) == pytest.approx(2 * 2**-10)
    assert holm({"a": 0.01, "b": 0.04, "c": 0.03}) == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})


def test_a_game_unlike_the_authors_is_told_apart() -> None:
    broken = [(set(), 20)] * 100  # nobody wakes up, every episode 20 steps long
    assert set(calibrate(broken, published_crafter()).differing()) >= {"wake_up", "episode length"}


@pytest.mark.slow
def test_our_crafter_random_agent_matches_the_published_one(tmp_path: Path) -> None:
    calibration = calibrate(crafter_episodes(run_random_crafter(40, 2, tmp_path)), published_crafter())
    assert calibration.episodes == 40
    assert calibration.differing() == [], calibration
    assert calibration.rates["wake_up"][0] > 0.8 and 100 < calibration.length[0] < 260  # it really played at length


def test_the_random_floor_needs_no_model_and_plays_the_same_twice(tmp_path: Path) -> None:
    (tmp_path / "two.yaml").write_text("name: two\nenvs:\n  crafter: {tasks: [crafter], seeds: [3], max_steps: 30}\n"
                                       "  minihack: {tasks: [MazeWalk-9x9], seeds: [1], max_steps: 30}\n")  # fmt: skip
    runs = []
    for run_id in ("first", "second"):
        run, results = run_eval(EvalOptions(submission="submissions/random", suite=str(tmp_path / "two.yaml"),
                                            runs_dir=str(tmp_path / "runs"), run_id=run_id, show_progress=False))  # fmt: skip
        assert results.complete
        runs.append(read_run(run.root))
    assert runs[0].record.model.endpoint == "none" and runs[0].record.model.kind == "none"
    for episode in runs[0].episodes():
        twin = next(e for e in runs[1].episodes() if e.key == episode.key)
        assert episode_fingerprint(runs[0].episode_folder(episode)) == episode_fingerprint(runs[1].episode_folder(twin))
        assert all(not step.llm_calls for step in runs[0].steps(episode))
    with pytest.raises(EvalError, match="makes no model call"):
        run_eval(EvalOptions(submission="submissions/random", suite=str(tmp_path / "two.yaml"), model="http://x/v1",
                             runs_dir=str(tmp_path / "runs"), run_id="third", show_progress=False))  # fmt: skip
