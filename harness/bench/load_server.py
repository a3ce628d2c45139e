"""A simulated OpenAI-compatible server for load tests: every chat answer takes a fixed time,
at any concurrency, and the server counts the requests it holds at once.

It runs in a process of its own (so its CPU is not the harness's) and answers as a
tool-calling vLLM server answers the seed agent: the first tool-offering call of a step with an
`append`, the next with a `search`, a choice-constrained call with one of its options. It
sets TCP_NODELAY (the scripted server does): without it, Nagle's algorithm and delayed ACKs
add ~40 ms to each call and the server would measure itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import random
import re
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from harness.bench.async_server import AsyncChatServer
from harness.models.scripted import ScriptedAnswer, requested_choices


class InFlight:
    """Requests held at once, integrated over time (mean = area / span), and when each
    connection brought its first episode call: a worker keeps one connection, served by one
    task of the server, so those are the episodes' first calls (the harness's preflight
    probes, which ask for one token, are not)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = self.peak = self.requests = 0
        self.area = 0.0
        self.first: float | None = None
        self.last = 0.0
        self.first_calls: list[float] = []  # wall-clock times (time.time())

    def episode_call(self, request: dict[str, Any], connection: dict[str, Any]) -> None:
        """Note a request; the first of its connection (whose own state is `connection`) that is
        not a preflight probe counts."""
        if request.get("max_tokens") == 1 or connection.get("seen"):
            return
        connection["seen"] = True
        with self._lock:
            self.first_calls.append(time.time())

    def _advance(self, moment: float) -> None:
        if self.first is None:
            self.first = moment
        self.area += self.now * (moment - self.last) if self.last else 0.0
        self.last = moment

    def __enter__(self) -> None:
        with self._lock:
            self._advance(time.monotonic())
            self.now += 1
            self.requests += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._advance(time.monotonic())
            self.now -= 1

    def summary(self) -> dict[str, Any]:
        with self._lock:
            span = self.last - (self.first or self.last)
            return {"requests": self.requests, "peak": self.peak, "span_s": span,
                    "mean_in_flight": self.area / span if span > 0 else 0.0,
                    "first_calls": list(self.first_calls), "last_wall": time.time() - (time.monotonic() - self.last)}  # fmt: skip


def seed_like_answer(request: dict[str, Any], rng: random.Random) -> Any:
    """What a tool-calling model might answer the seed agent (valid, varied, cheap)."""
    choices = requested_choices(request)
    if choices:
        return rng.choice(choices)
    names = [tool["function"]["name"] for tool in request.get("tools") or ()]
    if not names or request.get("tool_choice") == "none":
        return "ok"
    answered = sum(1 for message in request.get("messages", []) if message.get("role") == "assistant")
    if answered == 0 and "append" in names:
        name, arguments = "append", {"path": "notes.md", "text": f"seen thing {rng.randrange(20)}\n"}
    elif "search" in names:
        name, arguments = "search", {"pattern": f"thing {rng.randrange(20)}"}
    else:
        return "ok"
    call_id = f"call_{rng.randrange(10**9)}"
    return {"content": None, "tool_calls": [{"id": call_id, "type": "function",
                                             "function": {"name": name, "arguments": json.dumps(arguments)}}]}  # fmt: skip


# NetHack actions that take no game time and show varied screens, and one that does. The
# game ends an episode after 75 steps without game time passing (BALROG's no-progress rule),
# and a hero starves near turn 1,000: LongPlay searches every SEARCH_EVERY steps and
# prays when weak from hunger (a prayer in such trouble is answered once the prayer timeout,
# about 300 turns at the start, has run out), so one episode lives through 100,000 steps.
# (not the spell list: its menu opens a search prompt that no key of these leaves)
TIMELESS = ("look", "inventory", "attributes", "seegold", "seeweapon", "seearmor", "seerings", "seetools",
            "versionshort", "esc")  # fmt: skip
TIME_TAKING = "search"  # a turn spent in place (a move into a wall takes none)
SEARCH_EVERY = 30


# searched as if `\b` preceded them (_at_word_start): re scans fast for a pattern's leading
# literal, but with `\b` first it tries every position (80 us on a NetHack observation)
TURN = re.compile(r"T:(\d+)")
HEALTH = re.compile(r"HP:(\d+)\((\d+)\)")
PRAYER_GAP = 500  # turns between prayers: a prayer too soon after the last angers the god
ATTACKED = re.compile(r"\b(bites|hits|misses|stings|butts|kicks|claws|touches)\b")
ADJACENT = re.compile(r"^(?!tame )(?!.*(wall|door|corner|doorway))(.+) adjacent (?P<direction>north|south|east|west|northeast|northwest|southeast|southwest)$", re.M)


# Crafter seeds on which CrafterSurvival lives 300 steps (found by playing seeds 0-399 with it,
# offline: 89 of 400 live; the rest die of zombies, thirst or hunger). The load benchmark's
# ideal counts every episode busy to its last step, so its Crafter episodes play these.
CRAFTER_SEEDS = (6, 9, 11, 17, 21, 23, 26, 31, 37, 38, 43, 47, 54, 58, 59, 61, 66, 77, 79, 80, 81, 82, 97, 99, 104,
                 112, 116, 119, 122, 132, 138, 140, 143, 148, 149, 152, 153, 161, 166, 167, 173, 174, 176, 179, 183,
                 186, 189, 190, 194, 197, 200, 204, 213, 215, 223, 227, 230, 233, 246, 249, 255, 260, 266, 279, 282,
                 305, 313, 321, 323, 324, 326, 327, 328, 332, 333, 337, 344, 354, 356, 360, 361, 365, 367, 372, 375,
                 378, 380, 381, 385)  # fmt: skip
# NetHack seeds on which the survival play (_nethack_survival) lives 300 steps, found the same way
# (seeds 0-79 played offline on the game's own text: the heroes of seeds 54 and 60 die, at steps
# 294 and 31; in the load benchmark seed 60's died at step 25 and left 63 episodes busy).
NETHACK_SEEDS = tuple(seed for seed in range(80) if seed not in (54, 60))
CRAFTER_STATUS = re.compile(r"- (health|food|drink|energy): (\d+)/9")
CRAFTER_SEEN = re.compile(r"- (\w+) (\d+) steps? to your ([\w-]+)")
CRAFTER_MOVES = {"north": "Move North", "south": "Move South", "east": "Move East", "west": "Move West"}


class CrafterSurvival:
    """A Crafter player that drinks, eats and fights back, and walks in one direction to find
    water or a cow it cannot see: enough to live thousands of steps."""

    def __init__(self) -> None:
        self.heading, self.walked = "Move North", 0

    def __call__(self, current: str, rng: random.Random) -> str:
        action = self._choose(current, rng)
        lava = [where for thing, distance, where in CRAFTER_SEEN.findall(current) if thing == "lava" and distance == "1"]
        if action in (CRAFTER_MOVES.get(where) for where in lava):  # a step into lava ends the game
            safe = [move for where, move in CRAFTER_MOVES.items() if where not in lava]
            return rng.choice(safe) if safe else "Noop"
        return action

    def _choose(self, current: str, rng: random.Random) -> str:
        status = {name: int(value) for name, value in CRAFTER_STATUS.findall(current)}
        seen = {thing: (int(distance), where) for thing, distance, where in CRAFTER_SEEN.findall(current)}
        facing = re.search(r"You face (\w+)", current)
        front = facing[1] if facing else ""

        def toward(thing: str) -> str:  # a move toward it (into it: a turn to face it)
            directions = [part for part in seen[thing][1].split("-") if part in CRAFTER_MOVES]
            return CRAFTER_MOVES[rng.choice(directions)] if directions else "Noop"

        for foe in ("zombie", "skeleton"):  # fight what is next to the player, whatever its health
            if front == foe:
                return "Do"
            if seen.get(foe, (99, ""))[0] <= 1:
                return toward(foe)
        if seen.get("arrow", (99, ""))[0] <= 3:  # step out of its line
            along = seen["arrow"][1]
            sideways = ["east", "west"] if along in ("north", "south") else ["north", "south"]
            return CRAFTER_MOVES[rng.choice(sideways)]
        wants = []
        thirsty, hungry = status.get("drink", 9), status.get("food", 9)
        if thirsty <= 6 or (thirsty <= 8 and seen.get("water", (99, ""))[0] <= 3):
            wants.append("water")
        if hungry <= 6 or (hungry <= 8 and seen.get("cow", (99, ""))[0] <= 3):
            wants.append("cow")
        for want in wants:
            if front == want:
                return "Do"
            if want in seen:
                return toward(want)
        # Never asleep: a zombie hits a sleeper for 7. Unslept, energy runs out near step 270 and
        # costs a point of health every 15 steps or so after: a 300-step episode outlives it.
        if wants or rng.random() < 0.3:  # look for it, or wander
            self.walked += 1
            if self.walked > 15 or front not in ("grass", "sand", "path"):
                self.heading, self.walked = rng.choice(list(CRAFTER_MOVES.values())), 0
            return self.heading
        return "Noop"


class LongPlay:
    """Answers for free-text requests (BALROG's naive agent) over a 100,000-step NetHack episode:
    timeless looks, a search every SEARCH_EVERY steps, a prayer when weak or hurt, and a blow (a move into
    it, after closing any menu) at what attacks."""

    def __init__(self) -> None:
        self.requests = 0
        self.answered: dict[bytes, Any] = {}  # the last few requests' answers, by their messages
        self.turn, self.turn_seen = "", 0  # the game turn last shown, and when it last changed
        self.blow: str | None = None  # the direction to strike next, once a menu is closed
        self.prayed_at: int | None = None
        self.crafter = CrafterSurvival()

    def _may_pray(self) -> bool:
        turn = int(self.turn or 0)
        if self.prayed_at is not None and turn - self.prayed_at < PRAYER_GAP:
            return False
        self.prayed_at = turn
        return True

    def __call__(self, request: dict[str, Any], rng: random.Random) -> Any:
        if request.get("tools") or requested_choices(request):
            return seed_like_answer(request, rng)
        # A worker killed with a request in flight asks it again once resumed, word for word: it
        # gets the same answer and the play does not move on, so a resumed episode plays as the
        # uninterrupted one (this play counts its requests and draws from one generator).
        key = hashlib.sha256(json.dumps(request.get("messages"), sort_keys=True).encode()).digest()
        if key not in self.answered:
            self.answered[key] = self._answer(request, rng)
            while len(self.answered) > 4:
                del self.answered[next(iter(self.answered))]
        return self.answered[key]

    def _answer(self, request: dict[str, Any], rng: random.Random) -> Any:
        self.requests += 1
        messages = request.get("messages") or [{}]
        current = str(messages[-1].get("content", ""))
        if "Your status:" in current:
            return self.crafter(current, rng)
        turn = _at_word_start(TURN, current)
        if turn is not None and turn[1] != self.turn:
            self.turn, self.turn_seen = turn[1], self.requests
        if "Are you sure you want to pray" in current:
            return "y"
        health = _at_word_start(HEALTH, current)
        low = health is not None and (int(health[1]) < 6 or 7 * int(health[1]) < int(health[2]))
        if (" Weak" in current or "Fainting" in current or low) and self._may_pray():
            return "pray"
        message = current.split("language observation:")[0]
        foe = ADJACENT.search(current) if ATTACKED.search(message) else None
        if self.blow is not None:
            blow, self.blow = self.blow, None
            return blow
        if foe is not None:
            self.blow = foe["direction"]
            return "esc"
        stuck = self.requests - self.turn_seen >= SEARCH_EVERY + 10  # a search that took no time
        if stuck:  # two escapes leave any prompt (the first only clears a typed answer), then a search
            return TIME_TAKING if self.requests % 3 == 0 else "esc"
        if self.requests % SEARCH_EVERY == 0:
            return TIME_TAKING
        if self.requests % SEARCH_EVERY >= SEARCH_EVERY - 2:
            return "esc"  # close any menu first: it would take the next key
        return rng.choice(TIMELESS)


def _at_word_start(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """The first match of `pattern` not preceded by a word character, as `\b` + pattern finds it."""
    for match in pattern.finditer(text):
        before = text[match.start() - 1] if match.start() else " "
        if not (before.isalnum() or before == "_"):
            return match
    return None


def _observation(request: dict[str, Any]) -> str:
    """The latest game observation among a request's messages (the seed agent's action call
    carries it in an earlier message than the last)."""
    for message in reversed(request.get("messages") or []):
        content = str(message.get("content") or "")
        if "Your status:" in content or _at_word_start(TURN, content):
            return content
    return ""


def _crafter_rng(current: str) -> random.Random:
    """The Crafter player's chance, drawn from what it sees (its status, the things around it,
    what it faces), not from the server's shared stream: concurrent episodes interleave, so a
    shared stream would make each episode's play depend on the others' timing. Seeded by the
    observation, an episode plays the same whatever runs beside it and whichever agent asks,
    and the benchmark can play seeds on which this player is known to live (CRAFTER_SEEDS)."""
    facing = re.search(r"You face (\w+)", current)
    seen = (CRAFTER_STATUS.findall(current), CRAFTER_SEEN.findall(current), facing[1] if facing else "")
    return random.Random(hashlib.sha256(repr(seen).encode()).digest())


def _nethack_survival(current: str) -> str:
    """Stay alive in place: pray when weak or badly hurt, strike what attacks, else search (a
    turn passes, so BALROG's no-progress rule never ends the episode)."""
    if "Are you sure you want to pray" in current:
        return "y"
    health = _at_word_start(HEALTH, current)
    if " Weak" in current or "Fainting" in current or (health is not None and 7 * int(health[1]) < int(health[2])):
        return "pray"
    foe = ADJACENT.search(current) if ATTACKED.search(current.split("language observation:")[0]) else None
    return foe["direction"] if foe is not None else TIME_TAKING


def survival_answer(request: dict[str, Any], rng: random.Random) -> Any:
    """Keeps every one of many concurrent episodes alive (no state across requests: they
    interleave): the load benchmark's ideal counts every episode busy to its last step. Memory
    calls are answered as `seed_like_answer` does; the action call (free text, or a choice among
    the game's actions) with what keeps the player alive."""
    choices = requested_choices(request)
    if request.get("tools") and not choices:
        return seed_like_answer(request, rng)
    current = _observation(request)
    if not current:
        return seed_like_answer(request, rng)
    action = CrafterSurvival()(current, _crafter_rng(current)) if "Your status:" in current else _nethack_survival(current)
    if choices and action not in choices:
        return rng.choice(choices)
    return action


POLICIES: dict[str, Any] = {"seed-like": lambda: seed_like_answer, "long": LongPlay, "survive": lambda: survival_answer}


def _serve(connection: Connection, latency_s: float, policy: str) -> None:
    in_flight, rng = InFlight(), random.Random(0)
    answer = POLICIES[policy]()

    async def respond(request: dict[str, Any], seen: dict[str, Any]) -> ScriptedAnswer:
        in_flight.episode_call(request, seen)
        with in_flight:
            await asyncio.sleep(latency_s)
            given = answer(request, rng)  # one loop answers: the policy's state needs no lock
        # usage from the prompt's characters (a token is ~4): counting its words, as the scripted
        # server does by default, cost this server 0.2 ms a call of the cores the harness runs on
        message = dict(given) if isinstance(given, dict) else {"content": given}
        prompt_chars = sum(len(m["content"]) for m in request.get("messages", ()) if isinstance(m.get("content"), str))
        return ScriptedAnswer(message, usage={"prompt_tokens": prompt_chars // 4 + 1,
                                              "completion_tokens": len(str(message.get("content") or "").split())})  # fmt: skip

    server = AsyncChatServer(respond, model_name="simulated", owned_by="vllm")
    connection.send(server.start())
    while True:
        command = connection.recv()
        if command == "stats":
            connection.send(in_flight.summary() | {"cpu_s": time.process_time()})
        else:
            server.stop()
            connection.send("stopped")
            return


class LoadServer:
    """`with LoadServer(0.2) as server:` a simulated server at `server.url` in a child process."""

    def __init__(self, latency_s: float, policy: str = "seed-like") -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown answer policy {policy!r}; one of {', '.join(POLICIES)}")
        self.latency_s, self.policy = latency_s, policy
        self.url = ""

    def __enter__(self) -> LoadServer:
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, self.latency_s, self.policy), daemon=True)
        self._process.start()
        self.url = self._receive(timeout_s=60)
        return self

    def _receive(self, timeout_s: float) -> Any:
        """The server's next answer; a server that died or hangs is an error, not a hang."""
        if not self._connection.poll(timeout_s):
            alive = self._process.is_alive()
            self._process.kill()
            raise RuntimeError(f"the simulated server {'did not answer' if alive else 'exited'} "
                               f"(exit code {self._process.exitcode})")  # fmt: skip
        return self._connection.recv()

    def stats(self) -> dict[str, Any]:
        """Requests served, mean and peak in flight, and the server process's own CPU seconds."""
        self._connection.send("stats")
        stats: dict[str, Any] = self._receive(timeout_s=30)
        return stats

    def __exit__(self, *exc: object) -> None:
        try:
            self._connection.send("stop")
            self._receive(timeout_s=30)
        finally:
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.kill()
