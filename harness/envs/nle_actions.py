"""Readable names and one-line meanings for NLE's keyboard actions (NetHack and MiniHack).

Names are words, never the raw key: a model that answers "k" or "5" would be misread by the
game (k is north, digits are counts), so every key is reached through a name.
"""

from __future__ import annotations

import enum

from nle.nethack import actions as nle_actions

_DIRECTIONS = {
    "N": "north", "E": "east", "S": "south", "W": "west",
    "NE": "northeast", "SE": "southeast", "SW": "southwest", "NW": "northwest",
}  # fmt: skip

_SPECIAL_NAMES: dict[tuple[str, str], tuple[str, str]] = {
    ("MiscDirection", "UP"): ("up", "go up a staircase"),
    ("MiscDirection", "DOWN"): ("down", "go down a staircase"),
    ("MiscDirection", "WAIT"): ("wait", "rest one move while doing nothing"),
    ("MiscAction", "MORE"): ("more", "read the next message / confirm (Enter)"),
    ("TextCharacters", "PLUS"): ("plus sign", "the key + (answers prompts)"),
    ("TextCharacters", "MINUS"): ("minus sign", "the key - (answers prompts: bare hands)"),
    ("TextCharacters", "SPACE"): ("space", "the space key (closes menus, skips text)"),
    ("TextCharacters", "APOS"): ("apostrophe", "the key ' (answers prompts)"),
    ("TextCharacters", "QUOTE"): ("double quote", 'the key " (answers prompts)'),
    ("TextCharacters", "DOLLAR"): ("dollar sign", "the key $ (answers prompts: gold)"),
}

_COMMAND_MEANINGS: dict[str, str] = {
    "EXTCMD": "start an extended command", "EXTLIST": "list all extended commands",
    "ADJUST": "adjust inventory letters", "ANNOTATE": "name the current level",
    "APPLY": "apply (use) a tool", "ATTRIBUTES": "show your attributes",
    "AUTOPICKUP": "toggle autopickup", "CALL": "call (name) something",
    "CAST": "cast a spell", "CHAT": "talk to someone", "CLOSE": "close a door",
    "CONDUCT": "list voluntary challenges", "DIP": "dip an object into something",
    "DROP": "drop an item", "DROPTYPE": "drop items of chosen types", "EAT": "eat something",
    "ENGRAVE": "engrave on the floor", "ENHANCE": "advance weapon and spell skills",
    "ESC": "escape from the current prompt or menu", "FIGHT": "fight in a direction",
    "FIRE": "fire ammunition from the quiver", "FORCE": "force a lock",
    "GLANCE": "show what a map symbol is", "HISTORY": "show game history",
    "INVENTORY": "show your inventory", "INVENTTYPE": "show items of one type",
    "INVOKE": "invoke an object's power", "JUMP": "jump to another location",
    "KICK": "kick something", "KNOWN": "show discovered object types",
    "KNOWNCLASS": "show discovered types of one class", "LOOK": "look at what is here",
    "LOOT": "loot a box on the floor", "MONSTER": "use a monster's special ability",
    "MOVE": "prefix: move without picking up or fighting",
    "MOVEFAR": "prefix: run without picking up or fighting",
    "OFFER": "offer a sacrifice", "OPEN": "open a door", "OPTIONS": "show options",
    "OVERVIEW": "summary of the explored dungeon", "PAY": "pay your shopping bill",
    "PICKUP": "pick up things here", "PRAY": "pray to the gods for help",
    "PUTON": "put on an accessory", "QUAFF": "drink something", "QUIT": "quit the game",
    "QUIVER": "select ammunition for the quiver", "READ": "read a scroll or spellbook",
    "REDRAW": "redraw the screen", "REMOVE": "remove an accessory", "RIDE": "ride a steed",
    "RUB": "rub a lamp or stone", "RUSH": "prefix: rush until something interesting",
    "RUSH2": "prefix: rush until something interesting (variant)", "SAVE": "save and exit",
    "SEARCH": "search for hidden doors and traps", "SEEALL": "show equipment in use",
    "SEEAMULET": "show the worn amulet", "SEEARMOR": "show worn armor",
    "SEEGOLD": "count your gold", "SEERINGS": "show worn rings",
    "SEESPELLS": "list known spells", "SEETOOLS": "show tools in use",
    "SEETRAP": "show an adjacent trap", "SEEWEAPON": "show the wielded weapon",
    "SHELL": "shell escape (disabled)", "SIT": "sit down",
    "SWAP": "swap wielded and secondary weapons", "TAKEOFF": "take off armor",
    "TAKEOFFALL": "take off all armor", "TELEPORT": "teleport", "THROW": "throw something",
    "TIP": "empty a container", "TRAVEL": "travel to a map location",
    "TURN": "turn undead", "TWOWEAPON": "toggle two-weapon combat",
    "UNTRAP": "untrap something", "VERSION": "show compile options",
    "VERSIONSHORT": "show the version", "WEAR": "wear armor", "WHATDOES": "tell what a key does",
    "WHATIS": "show what a symbol is", "WIELD": "wield a weapon", "WIPE": "wipe your face",
    "ZAP": "zap a wand",
}  # fmt: skip


def key_of(action: enum.IntEnum) -> str:
    """The keyboard character an action sends, for instructions ('k', '^D', 'M-a')."""
    code = int(action)
    named = {ord(" "): "Space", ord("\r"): "Enter", 0x1B: "Esc"}
    if code in named:
        return named[code]
    if code & 0x80:
        return "M-" + chr(code & 0x7F)
    if code < 0x20:
        return "^" + chr(code + 0x40)
    return chr(code)


def name_and_meaning(action: enum.IntEnum) -> tuple[str, str]:
    """Readable name and one-line meaning of one NLE action enum member."""
    group, member = type(action).__name__, action.name
    if (group, member) in _SPECIAL_NAMES:
        return _SPECIAL_NAMES[(group, member)]
    if group in ("CompassDirection", "CompassCardinalDirection", "CompassIntercardinalDirection"):
        return _DIRECTIONS[member], f"move one step {_DIRECTIONS[member]} (attacks what is there)"
    if group.startswith("CompassDirectionLonger") or group.endswith("DirectionLonger"):
        return f"far {_DIRECTIONS[member]}", f"run {_DIRECTIONS[member]} until something is seen"
    if group == "TextCharacters" and member.startswith("NUM_"):
        digit = member[len("NUM_") :]
        return f"number {digit}", f"the key {digit} (answers prompts, counts)"
    if group == "Command":
        return member.lower(), _COMMAND_MEANINGS.get(member, member.lower())
    raise ValueError(f"no name for NLE action {group}.{member}")


def named_actions(actions: tuple[enum.IntEnum, ...]) -> dict[str, int]:
    """Name -> index into `actions` (the env's own action tuple), in the env's order."""
    names: dict[str, int] = {}
    for index, action in enumerate(actions):
        name, _ = name_and_meaning(action)
        if name in names:
            raise ValueError(f"two NLE actions share the name {name!r}")
        names[name] = index
    return names


def action_list_text(actions: tuple[enum.IntEnum, ...]) -> str:
    """One line per action: '- name (key): meaning'."""
    lines = []
    for action in actions:
        name, meaning = name_and_meaning(action)
        lines.append(f"- {name} ({key_of(action)}): {meaning}")
    return "\n".join(lines)


ALL_NETHACK_ACTIONS: tuple[enum.IntEnum, ...] = tuple(nle_actions.ACTIONS)
