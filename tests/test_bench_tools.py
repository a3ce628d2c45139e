"""The performance benchmarks' own parts: the profile's attribution of samples, the long
benchmark's checkpoints, and the simulated server's play that keeps a NetHack hero alive."""

import itertools
import random

from hypothesis import given
from hypothesis import strategies as st

from harness.bench.load_server import SEARCH_EVERY, TIME_TAKING, LongPlay, survival_answer
from harness.bench.long import WINDOW, Sample, checkpoints
from harness.bench.profile import RATE_HZ, Profile, classify, tally

ROOT = 'process 1:"python -m harness.bench.profile";_run_module_as_main (<frozen runpy>:198)'
WORKER = ROOT + ";main (harness/agent/worker.py:62);run_episode (harness/agent/episode.py:221)"


def test_a_sample_counts_for_the_innermost_frame_of_ours() -> None:
    chat = WORKER + ";__call__ (harness/agent/episode.py:58);chat (harness/models/client.py:240);dumps (json/__init__.py:231)"
    assert classify(chat) == "model client"  # json inside the client is the client's
    dedup = WORKER + ";ids_of (harness/runs/trace.py:80);MessageStore._id (harness/runs/trace.py:70);_key (harness/runs/trace.py:45)"
    assert classify(dedup) == "prompt bookkeeping"
    write = WORKER + ";EpisodeTrace.write_step (harness/runs/trace.py:130);_AppendOnlyLines.write (harness/runs/trace.py:33);dumps (json/__init__.py:231)"
    assert classify(write) == "records"
    # helpers count for their caller: a call's message line and the store's LRU map are its bookkeeping
    stored = WORKER + ";MessageStore._id (harness/runs/trace.py:70);_AppendOnlyLines.write (harness/runs/trace.py:33)"
    assert classify(stored) == "prompt bookkeeping"
    lru = WORKER + ";MessageStore._message_id (harness/runs/trace.py:70);Recent.get (harness/runs/recent.py:24)"
    assert classify(lru) == "prompt bookkeeping"

    scaffold = WORKER + ";step (scaffold.py:40);sub (re/__init__.py:185)"
    assert classify(scaffold) == "scaffold code"
    game = ROOT + ";serve_connection (harness/envs/server.py:160);answer (harness/envs/server.py:120);step (harness/envs/nethack.py:80)"
    assert classify(game) == "game: step"
    text = game + ";language_view (harness/envs/nle_language.py:125)"
    assert classify(text) == "game: text rendering"
    assert classify(WORKER + ";_find_and_load (<frozen importlib._bootstrap>:1176)") is None  # start-up
    assert classify(ROOT + ";run_eval (harness/tracks/eval.py:300)") is None  # the scheduler


def test_per_step_and_per_call_figures_come_from_the_samples() -> None:
    raw = "\n".join([WORKER + ";chat (harness/models/client.py:240) 500",
                     WORKER + ";add (harness/runs/prefix.py:90) 100",
                     WORKER + ";enter (harness/runs/phase.py:40) 25",
                     WORKER + ";step (scaffold.py:40) 100"])  # fmt: skip
    profile = Profile("crafter", "seed", steps=100, calls=300, samples=tally(raw))
    assert profile.harness_ms_per_call() == 1e3 * 600 / RATE_HZ / 300  # the client and the prompt bookkeeping
    assert profile.beyond_calls_and_game_ms_per_step() == 1e3 * 25 / RATE_HZ / 100  # the scaffold's own is not the harness's


def test_checkpoints_take_the_cpu_per_step_over_the_window_before_each() -> None:
    samples = [Sample(1, step / 1000, step, worker_cpu_s=step * 0.002, worker_rss=100 * 2**20, game_cpu_s=step * 0.001,
                      game_rss=50 * 2**20) for step in range(0, 12_001, 100)]  # fmt: skip
    # a worker killed there and resumed: its own clock from zero, step 0 while it replays
    samples += [Sample(2, 13.0 + n, 0, worker_cpu_s=0.1 * n, worker_rss=0, game_cpu_s=0.0, game_rss=0) for n in range(3)]
    rows = checkpoints("nethack", samples, (1_000, 10_000, 50_000))
    assert [row.step for row in rows] == [1_000, 10_000]  # 50,000 was not reached
    assert all(abs(row.worker_ms_per_step - 2.0) < 1e-9 and abs(row.game_ms_per_step - 1.0) < 1e-9 for row in rows)
    assert rows[0].worker_rss_mb == 100 and WINDOW < 1_000


_STEPS = itertools.count()


def _ask(play: LongPlay, observation: str) -> str:
    """The naive agent's request at a new step: its history differs from every earlier one's."""
    history = {"role": "user", "content": f"earlier steps ... {next(_STEPS)}"}
    answer: str = play({"messages": [history, {"role": "user", "content": observation}]}, random.Random(0))
    return answer


def test_the_long_play_answers_a_request_asked_again_as_it_did_and_moves_on_only_once() -> None:
    """A worker killed with a request in flight asks it again when resumed: the same answer, and
    the play's count and generator are where they were, so the resumed episode plays on as the
    uninterrupted one."""
    quiet = "message:\n\nlanguage observation:\nhorizontal wall near north\n\nDlvl:1 $:0 HP:16(16) T:5"
    request = {"messages": [{"role": "user", "content": "earlier steps ... again"}, {"role": "user", "content": quiet}]}
    play, twin, rng = LongPlay(), LongPlay(), random.Random(1)
    first = play(request, rng)
    assert play(request, rng) == first and play.requests == 1
    twin(request, random.Random(1))
    assert [_ask(play, quiet) for _ in range(40)] == [_ask(twin, quiet) for _ in range(40)]


def test_the_long_play_spends_game_time_prays_when_weak_and_strikes_back() -> None:
    play = LongPlay()
    quiet = "message:\n\nlanguage observation:\nhorizontal wall near north\n\nDlvl:1 $:0 HP:16(16) T:5"
    answers = [_ask(play, quiet) for _ in range(SEARCH_EVERY)]
    assert answers[-1] == TIME_TAKING and answers[-3:-1] == ["esc", "esc"]  # menus closed first
    assert _ask(play, quiet.replace("T:5", "T:900 Weak")) == "pray"
    assert _ask(play, "Are you sure you want to pray? [yn] (n)") == "y"
    bitten = "message:\nThe jackal bites!\n\nlanguage observation:\njackal adjacent west\n\nHP:10(16) T:901"
    assert _ask(play, bitten) == "esc" and _ask(play, quiet) == "west"
    stuck = LongPlay()
    answers = [_ask(stuck, quiet) for _ in range(3 * SEARCH_EVERY)]  # the turn never moves on
    assert answers[-6:].count(TIME_TAKING) >= 2


def test_the_survival_answers_keep_any_episode_alive_without_state_across_requests() -> None:
    rng = random.Random(0)
    quiet = "message:\n\nlanguage observation:\nhorizontal wall near north\n\nDlvl:1 $:0 HP:16(16) T:5"
    bitten = "message:\nThe jackal bites!\n\nlanguage observation:\njackal adjacent west\n\nHP:10(16) T:901"
    free = {"messages": [{"role": "system", "content": "play"}, {"role": "user", "content": quiet}]}
    assert survival_answer(free, rng) == TIME_TAKING  # a turn passes: no-progress never ends it
    assert survival_answer({"messages": [{"role": "user", "content": bitten}]}, rng) == "west"
    assert survival_answer({"messages": [{"role": "user", "content": quiet.replace("HP:16", "HP:2")}]}, rng) == "pray"
    # the seed agent's action call: a choice among the game's actions, the observation earlier on
    choice = {"messages": [{"role": "user", "content": quiet}, {"role": "user", "content": "Choose."}],
              "structured_outputs": {"choice": ["north", "search", "pray"]}}  # fmt: skip
    assert survival_answer(choice, rng) == "search"
    thirsty = "Your status:\n- health: 9/9\n- food: 9/9\n- drink: 3/9\n- energy: 9/9\nYou see:\n- water 2 steps to your west\nYou face grass at your front."
    assert survival_answer({"messages": [{"role": "user", "content": thirsty}]}, rng) == "Move West"
    memory = {"messages": [{"role": "user", "content": quiet}],
              "tools": [{"type": "function", "function": {"name": "append"}}]}  # fmt: skip
    assert survival_answer(memory, rng)["tool_calls"][0]["function"]["name"] == "append"


def test_the_crafter_player_plays_the_same_whichever_agent_asks_and_lives_on_its_seeds() -> None:
    """Its chance comes from what it sees, so the naive agent's request (the observation split
    in two, a reminder after) and the seed agent's (the observation among others) get the
    answer the plain observation gets; and on a seed of CRAFTER_SEEDS it lives 300 steps."""
    from harness.bench.load_server import CRAFTER_SEEDS
    from harness.envs import make_env

    game = make_env("crafter", "crafter")
    observation = game.reset(CRAFTER_SEEDS[0])
    lived = 0
    for _ in range(300):
        text = observation.text
        plain = survival_answer({"messages": [{"role": "user", "content": text}]}, random.Random(1))
        naive = {"messages": [{"role": "user", "content": "Observation:\nan older one"}, {"role": "user", "content":
                 f"Current Observation:\n{observation.short_lived}\n{observation.long_lived}\n\nAnswer with one action."}]}  # fmt: skip
        seed = {"messages": [{"role": "user", "content": f"Step 3.\nObservation:\n{text}\n\nYour memory files: notes.md"},
                             {"role": "user", "content": "ACT: answer with the name of your next action."}],
                "structured_outputs": {"choice": list(game.spec.actions)}}  # fmt: skip
        assert survival_answer(naive, random.Random(2)) == plain == survival_answer(seed, random.Random(3))
        result = game.step(plain)
        lived += 1
        if result.done:
            break
        observation = result.observation
    game.close()
    assert lived == 300


@given(st.text(alphabet="T:HP()0123 a_\né-", max_size=60))
def test_a_search_at_a_word_start_finds_what_a_leading_word_boundary_finds(text: str) -> None:
    """The simulated server's patterns are searched without a leading `\\b` (re then scans for
    their literal start) and checked for it after: the same match, span and groups."""
    import re

    from harness.bench.load_server import HEALTH, TURN, _at_word_start

    for pattern in (TURN, HEALTH):
        bounded = re.compile(r"\b" + pattern.pattern).search(text)
        found = _at_word_start(pattern, text)
        assert (bounded and (bounded.span(), bounded.groups())) == (found and (found.span(), found.groups()))


def test_the_simulated_server_answers_the_harness_client_after_its_latency_and_counts_first_calls() -> None:
    """The load benchmark's server (one asyncio loop) speaks to the harness's own client: a
    chat answer after the latency, usage from the prompt's characters, a choice-constrained
    call answered from its options; each connection's first call counts once, a preflight
    probe (one token) never."""
    import time

    from harness.bench.load_server import LoadServer
    from harness.models.client import ChatClient

    with LoadServer(0.05, policy="survive") as server:
        client, probe = ChatClient(server.url), ChatClient(server.url)
        assert client.kind == "vllm" and client.model == "simulated"
        probe.chat([{"role": "user", "content": "ready?"}], max_tokens=1)
        started = time.perf_counter()
        answer = client.chat([{"role": "user", "content": "HP:16(16) T:1 hello"}])
        assert time.perf_counter() - started >= 0.05
        assert answer.text == TIME_TAKING and answer.prompt_tokens == len("HP:16(16) T:1 hello") // 4 + 1
        chosen = client.chat([{"role": "user", "content": "T:2"}], choices=["north", "south"])
        assert chosen.text in ("north", "south")
        stats = server.stats()
    assert stats["requests"] == 3 and len(stats["first_calls"]) == 1


def test_the_nethack_hero_lives_300_steps_on_a_seed_of_nethack_seeds_and_not_on_one_left_out() -> None:
    from harness.bench.load_server import NETHACK_SEEDS
    from harness.envs import make_env

    def lived(seed: int) -> int:
        game = make_env("nethack", "NetHackChallenge-v0")
        observation = game.reset(seed)
        for step in range(1, 301):
            result = game.step(survival_answer({"messages": [{"role": "user", "content": observation.text}]}, random.Random(1)))
            if result.done:
                game.close()
                return step
            observation = result.observation
        game.close()
        return 300

    assert 60 not in NETHACK_SEEDS and lived(60) < 300
    assert lived(NETHACK_SEEDS[62]) == 300
