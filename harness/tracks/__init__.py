"""Tracks: `eval` (fixed-seed evaluation), `scaffold` and `memory` (the AUTOMEM outer loops)."""
