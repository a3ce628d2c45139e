"""A run's content digest: what a verification is bound to.

Every file of the run folder but verification.json itself, by relative path, with the sha256
of its bytes; the tree digest is the sha256 of that listing. `harness verify` stores both;
`harness leaderboard` computes them again and refuses a run whose files changed since (a link
in the run folder is listed as a link: its target is never read).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from harness.runs.layout import VERIFICATION_FILE

CHUNK = 1024 * 1024


def file_digests(root: Path) -> dict[str, str]:
    """relative path -> "sha256:HEX" of every file under `root` (links as "link:TARGET")."""
    digests: dict[str, str] = {}
    for folder, subfolders, files in os.walk(root, followlinks=False):
        base = Path(folder)
        for name in files + [d for d in subfolders if (base / d).is_symlink()]:
            path = base / name
            relative = path.relative_to(root).as_posix()
            if relative == VERIFICATION_FILE:
                continue
            if path.is_symlink():
                digests[relative] = f"link:{os.readlink(path)}"
                continue
            digest = hashlib.sha256()
            with open(path, "rb") as stream:
                while chunk := stream.read(CHUNK):
                    digest.update(chunk)
            digests[relative] = f"sha256:{digest.hexdigest()}"
    return dict(sorted(digests.items()))


def tree_digest(digests: dict[str, str]) -> str:
    """The digest of a listing made by `file_digests`."""
    listing = "".join(f"{path}\0{digest}\n" for path, digest in sorted(digests.items()))
    return "sha256:" + hashlib.sha256(listing.encode()).hexdigest()


def changed_files(recorded: dict[str, str], now: dict[str, str]) -> list[str]:
    """What differs between two listings: 'changed X', 'added X', 'removed X', sorted by path."""
    changes = [f"changed {p}" for p in sorted(set(recorded) & set(now)) if recorded[p] != now[p]]
    changes += [f"added {p}" for p in sorted(set(now) - set(recorded))]
    changes += [f"removed {p}" for p in sorted(set(recorded) - set(now))]
    return sorted(changes, key=lambda change: change.split(" ", 1)[1])
