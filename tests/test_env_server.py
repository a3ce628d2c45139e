"""The env server and its client: same game as in-process, clear errors, robust sessions."""

import contextlib
import socket
import time
from pathlib import Path

import pytest

from harness.envs import EnvError, InvalidActionError, make_env
from harness.envs.base import STANDARD_TEXT, ReplayDiverged
from harness.envs.client import EnvClient
from harness.envs.game_process import GameProcess
from harness.envs.gamelog import GAME_LOG_FILE, observation_digest, read_game_session
from harness.envs.replay import replay
from harness.envs.server import EnvServer, ServerProcess


@pytest.fixture()
def minihack_server() -> EnvServer:
    server = EnvServer("minihack")
    server.serve_in_thread()
    yield server
    server.shutdown()
    server.server_close()


def _address(server: EnvServer) -> str:
    host, port = server.address
    return f"{host}:{port}"


def test_client_plays_the_same_game_as_in_process(minihack_server: EnvServer) -> None:
    actions = ["north", "east", "east", "south", "west", "northeast"] * 10
    local = replay("minihack", "MazeWalk-9x9", 3, actions)
    client = EnvClient(_address(minihack_server), "MazeWalk-9x9")
    remote = replay("minihack", "MazeWalk-9x9", 3, actions, game=client)
    assert remote.digest == local.digest
    assert client.spec == make_env("minihack", "MazeWalk-9x9").spec


def test_invalid_action_is_refused_with_valid_names(minihack_server: EnvServer) -> None:
    client = EnvClient(_address(minihack_server), "Corridor-R3")
    client.reset(0)
    with pytest.raises(InvalidActionError) as refused:
        client.step("k")
    assert "kick" in refused.value.valid_actions
    client.step("north")  # the session goes on
    client.close()


def test_server_refuses_an_unknown_action_sent_past_the_client_check(minihack_server: EnvServer) -> None:
    with socket.create_connection(minihack_server.address) as raw:
        stream = raw.makefile("rwb")
        for message in (b'{"op": "make", "task": "MazeWalk-9x9"}\n', b'{"op": "reset", "seed": 1}\n',
                        b'{"op": "step", "action": "fly"}\n', b'not json\n'):
            stream.write(message)
            stream.flush()
            reply = stream.readline()
        assert b'"ok": false' in reply
        stream.write(b'{"op": "step", "action": "fly"}\n')
        stream.flush()
        assert b"InvalidActionError" in stream.readline()


def test_server_survives_a_client_that_disconnects_mid_episode(minihack_server: EnvServer) -> None:
    quitter = EnvClient(_address(minihack_server), "MazeWalk-9x9")
    quitter.reset(0)
    quitter._socket.close()  # vanish without "close"
    survivor = EnvClient(_address(minihack_server), "MazeWalk-9x9")
    assert "@" in survivor.reset(0).text
    assert survivor.info()["env"] == "minihack"
    survivor.close()


def test_client_gets_a_clear_error_not_a_hang_when_the_server_dies() -> None:
    server = ServerProcess("nethack")
    client = EnvClient(server.address, timeout_s=30)
    client.reset(0)
    server.process.kill()
    server.process.wait()
    started = time.monotonic()
    with pytest.raises(EnvError, match="closed the connection|lost the env server"):
        client.step("north")
    assert time.monotonic() - started < 5
    server.stop()


def test_client_cannot_reach_a_missing_server() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(EnvError, match="cannot reach"):
        EnvClient(f"127.0.0.1:{port}")


def test_cli_server_process_serves_crafter() -> None:
    with ServerProcess("crafter") as server:
        client = EnvClient(server.address)
        assert client.spec.name == "crafter"
        result = client.step("Noop") if client.reset(1) else None
        assert result is not None and "Your status:" in result.observation.text
        client.close()


def test_a_game_process_replays_an_earlier_attempt_in_one_request(tmp_path: Path) -> None:
    """The resume path (agent.resume): the game replays the kept actions itself, checks the
    observation before each against the trace's digest, logs every step, and names the first
    step whose observation differs."""
    actions = ["Move West", "Move North", "Do", "Noop", "Move East"] * 8
    local = make_env("crafter")
    shown = [local.reset(4).text]
    for action in actions:
        shown.append(local.step(action).observation.text)
    digests = [observation_digest(text) for text in shown[:-1]]
    game_log = tmp_path / GAME_LOG_FILE

    process = GameProcess("crafter", "crafter", 4, STANDARD_TEXT, str(game_log))
    with contextlib.closing(process.client()) as game:
        game.reset(4)
        result = game.replay(actions, digests)
        assert result is not None and result.observation.text == shown[-1]
        session = read_game_session(game_log)
        assert session is not None and [event["action"] for event in session.steps] == actions
        assert [event["digest"] for event in session.steps] == [observation_digest(text) for text in shown[1:]]
        with pytest.raises(EnvError, match="replay plays from the reset"):
            game.replay(actions[:1], digests[:1])  # the game has moved on

    tampered = [*digests[:17], observation_digest("a different view"), *digests[18:]]
    process = GameProcess("crafter", "crafter", 4, STANDARD_TEXT, str(tmp_path / "other.jsonl"))
    with contextlib.closing(process.client()) as game:
        game.reset(4)
        with pytest.raises(ReplayDiverged, match="before step 17 differs"):
            game.replay(actions, tampered)
