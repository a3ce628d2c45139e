"""The action vocabularies of NetHack and MiniHack, as BALROG offers them.

NetHack: one name for every NLE action BALROG counts as useful (NLE's `USEFUL_ACTIONS`,
which leaves out quit, save, travel, teleport, options and other commands that end or leave
the game or only show information), under BALROG's names, plus the raw keys a-z, A-Z and
0-9, so that a model can answer a prompt or pick item `g` in a menu with the letter itself.
MiniHack: BALROG's short list of movement and interaction names, kept where the task's own
action set has the key. Every name sends one key; the meaning of each is ours.
"""

from __future__ import annotations

import enum
import string
from dataclasses import dataclass

import nle.nethack as nh

_DIRECTIONS = {
    "N": "north", "E": "east", "S": "south", "W": "west",
    "NE": "northeast", "SE": "southeast", "SW": "southwest", "NW": "northwest",
}  # fmt: skip

# Names where BALROG's name is not the lower-cased NLE member name.
_NAMES: dict[tuple[str, str], str] = {
    ("MiscDirection", "UP"): "up", ("MiscDirection", "DOWN"): "down",
    ("MiscDirection", "WAIT"): "wait", ("MiscAction", "MORE"): "more",
    ("Command", "TURN"): "turnundead",
    # NLE's text keys share their codes with commands: "+" is seespells, '"' seeamulet, "$" seegold
    ("TextCharacters", "PLUS"): "seespells", ("TextCharacters", "QUOTE"): "seeamulet",
    ("TextCharacters", "DOLLAR"): "seegold",
}  # fmt: skip

_MEANINGS: dict[str, str] = {
    "up": "climb a staircase up (<)", "down": "go down a staircase (>) you stand on",
    "wait": "let one turn pass", "more": "show the rest of a message that ends in --More--",
    "adjust": "change an item's inventory letter", "apply": "use a tool", "attributes": "show your attributes",
    "call": "give a name to a monster or object type", "cast": "cast a known spell", "chat": "talk to someone next to you",
    "close": "close a door next to you", "dip": "dip an item into something", "drop": "drop one item",
    "droptype": "drop items chosen by type", "eat": "eat something (when hungry)", "esc": "cancel the current prompt or menu",
    "engrave": "write on the floor", "enhance": "advance a trained skill", "fire": "shoot what is in your quiver",
    "fight": "attack in a direction, even if nothing is seen there", "force": "force a lock with your weapon",
    "inventory": "show your inventory", "inventtype": "show inventory items of one type",
    "invoke": "invoke an artifact's power", "jump": "jump to a nearby square", "kick": "kick something (doors, boxes, monsters)",
    "look": "look at what is here", "loot": "open a container on the floor",
    "monster": "use a special ability of your current form", "move": "prefix: step without picking up or fighting",
    "movefar": "prefix: run without picking up or fighting", "offer": "sacrifice a corpse at an altar",
    "open": "open a door next to you", "pay": "pay a shopkeeper", "pickup": "pick up what lies here",
    "pray": "pray to your god (helps in trouble, not too often)", "puton": "put on a ring or amulet",
    "quaff": "drink a potion or from a fountain", "quiver": "choose ammunition for firing",
    "read": "read a scroll, spellbook or inscription", "remove": "take off a ring or amulet", "ride": "mount or dismount a steed",
    "rub": "rub a lamp or stone", "rush": "prefix: move until something interesting",
    "rush2": "prefix: move until something interesting (variant)", "search": "look for hidden doors and traps around you",
    "seeamulet": "show your amulet", "seearmor": "show your armor", "seegold": "count your gold",
    "seerings": "show your rings", "seespells": "list your spells", "seetools": "show tools in use",
    "seetrap": "identify a trap next to you", "seeweapon": "show your weapon", "shell": "(not available in this game)",
    "sit": "sit down", "swap": "swap primary and secondary weapons", "takeoff": "take off one piece of armor",
    "takeoffall": "take off several pieces of armor", "throw": "throw an item", "tip": "empty a container",
    "turnundead": "turn undead (priests and knights)", "twoweapon": "fight with two weapons (toggle)",
    "untrap": "disarm a trap", "versionshort": "show the game version", "wear": "put on armor", "wield": "wield a weapon",
    "wipe": "wipe your face", "zap": "zap a wand", "minus": "the key - (e.g. bare hands when asked what to wield)",
    "space": "the space key (closes menus and text windows)", "apos": "the key '",
}  # fmt: skip

RAW_KEYS: tuple[str, ...] = tuple(string.ascii_lowercase + string.ascii_uppercase + string.digits)

MINIHACK_NAMES: tuple[str, ...] = (
    "north", "east", "south", "west", "northeast", "southeast", "southwest", "northwest",
    "far north", "far east", "far south", "far west", "far northeast", "far southeast",
    "far southwest", "far northwest", "up", "down", "wait", "more", "apply", "close", "open",
    "eat", "force", "kick", "loot", "pickup", "pray", "puton", "quaff", "search", "zap",
)  # fmt: skip


@dataclass(frozen=True)
class NamedAction:
    name: str
    key: int  # the key code the game receives
    meaning: str


def balrog_name(action: enum.IntEnum) -> str:
    """BALROG's name of one NLE action."""
    group, member = type(action).__name__, action.name
    if (group, member) in _NAMES:
        return _NAMES[(group, member)]
    if group in ("CompassDirection", "CompassCardinalDirection", "CompassIntercardinalDirection"):
        return _DIRECTIONS[member]
    if group.endswith("DirectionLonger"):
        return f"far {_DIRECTIONS[member]}"
    if group in ("Command", "TextCharacters"):
        return member.lower()
    raise ValueError(f"no name for NLE action {group}.{member}")


def _meaning(name: str) -> str:
    if name in _DIRECTIONS.values():
        return f"move one square {name} (attacks what is there)"
    if name.startswith("far "):
        return f"run {name[4:]} until something interesting"
    return _MEANINGS.get(name, name)


def key_label(code: int) -> str:
    """How a key code is written in the instructions ('k', '^D', 'M-a', 'Enter')."""
    named = {ord(" "): "Space", ord("\r"): "Enter", 0x1B: "Esc"}
    if code in named:
        return named[code]
    if code & 0x80:
        return "M-" + chr(code & 0x7F)
    if code < 0x20:
        return "^" + chr(code + 0x40)
    return chr(code)


def nethack_vocabulary() -> tuple[NamedAction, ...]:
    """BALROG's NetHack names (one per key of NLE's useful actions), then the raw keys."""
    named: dict[int, NamedAction] = {}
    for action in nh.USEFUL_ACTIONS:
        if int(action) not in named:
            name = balrog_name(action)
            named[int(action)] = NamedAction(name, int(action), _meaning(name))
    raw = tuple(NamedAction(key, ord(key), "the key itself") for key in RAW_KEYS)
    return tuple(named.values()) + raw


def minihack_vocabulary(task_actions: tuple[enum.IntEnum, ...]) -> tuple[NamedAction, ...]:
    """BALROG's MiniHack names that the task's own action set can send, in BALROG's order."""
    by_name = {balrog_name(action): int(action) for action in task_actions}
    return tuple(NamedAction(name, by_name[name], _meaning(name)) for name in MINIHACK_NAMES if name in by_name)


def action_list_text(vocabulary: tuple[NamedAction, ...]) -> str:
    """One line per named action ('- name (key): meaning'); raw keys as one line."""
    lines = [f"- {a.name} ({key_label(a.key)}): {a.meaning}" for a in vocabulary if a.name not in RAW_KEYS]
    if any(a.name in RAW_KEYS for a in vocabulary):
        lines.append("- a-z, A-Z, 0-9: that key itself (item letters in menus and prompts, y/n answers, counts)")
    return "\n".join(lines)
