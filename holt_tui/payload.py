"""Payload text for the inspector: pretty-printed, diffed against the previous version, always sanitised.

Large payloads are cut before any work is done on them, so a 5 MB payload costs the same as a 200 kB one;
the cut is stated on screen, never silent.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass

from holt_core.sanitise import sanitise_text

MAX_LINE = 2000  # characters of one displayed line
MAX_LINES = 5000
_PRETTY_LIMIT = 1_000_000  # beyond this, do not parse JSON just to indent it


@dataclass(frozen=True)
class PayloadText:
    lines: list[str]
    is_json: bool
    note: str = ""  # e.g. "showing the first 200,000 of 5,242,880 characters"


def _indent(text: str) -> tuple[str, bool]:
    if len(text) > _PRETTY_LIMIT:
        return text, False
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return text, False
    if not isinstance(value, dict | list):
        return text, False
    try:
        return json.dumps(value, indent=2, ensure_ascii=False), True
    except (RecursionError, ValueError):
        return text, False


def _lines(text: str) -> list[str]:
    out: list[str] = []
    for line in sanitise_text(text, keep_newlines=True).split("\n"):
        if len(out) >= MAX_LINES:
            break
        out.append(line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…")
    return out


def pretty_payload(payload: str, *, max_chars: int) -> PayloadText:
    notes: list[str] = []
    text = payload
    if len(text) > max_chars:
        notes.append(f"showing the first {max_chars:,} of {len(payload):,} characters")
        text = text[:max_chars]
    pretty, is_json = _indent(text)
    lines = _lines(pretty)
    if len(lines) >= MAX_LINES:
        notes.append(f"showing the first {MAX_LINES:,} lines")
    return PayloadText(lines, is_json, "; ".join(notes))


def payload_diff(old: str, new: str, *, max_chars: int) -> list[str]:
    """Unified diff lines (``+``/``-``/`` ``/``@@``) of two payloads, both pretty-printed when JSON."""
    a = _lines(_indent(old[:max_chars])[0])
    b = _lines(_indent(new[:max_chars])[0])
    diff = list(difflib.unified_diff(a, b, "previous", "this", lineterm="", n=2))
    return diff[2:] if len(diff) > 2 else []
