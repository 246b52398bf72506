"""Go ``filepath.Match`` semantics (Unix separator) for ``--type`` filters, as a Python regex.

Differences from ``fnmatch`` that matter: ``*`` and ``?`` never match ``/``; negation is ``[^...]``;
``\\`` escapes; ``[]`` and other malformed patterns match nothing.

Go matches chunk by chunk (a chunk is the text between stars) and commits to the *first* place an
intermediate chunk fits, without backtracking. Each such chunk therefore becomes an atomic group with a
lazy skip, ``(?>[^/]*?CHUNK)``, so the regex agrees with Go even where full backtracking would not.
"""

from __future__ import annotations

import re
from functools import lru_cache


class _BadPattern(Exception):
    pass


def _split_chunks(pattern: str) -> list[tuple[bool, str]]:
    """(star-before, chunk) pairs, split the way Go's ``scanChunk`` splits (a ``*`` inside ``[...]`` stays)."""
    chunks: list[tuple[bool, str]] = []
    rest = pattern
    while rest:
        star = False
        while rest.startswith("*"):
            rest = rest[1:]
            star = True
        in_range = False
        i = 0
        while i < len(rest):
            ch = rest[i]
            if ch == "\\":
                i += 1  # skip the escaped character (a trailing backslash is caught later)
            elif ch == "[":
                in_range = True
            elif ch == "]":
                in_range = False
            elif ch == "*" and not in_range:
                break
            i += 1
        i = min(i, len(rest))
        chunks.append((star, rest[:i]))
        rest = rest[i:]
    return chunks


def _class_char(chunk: str, pos: int) -> tuple[str, int]:
    """One (possibly escaped) character of a class range, as Go's ``getEsc`` reads it."""
    if pos >= len(chunk) or chunk[pos] in "-]":
        raise _BadPattern
    if chunk[pos] == "\\":
        pos += 1
        if pos >= len(chunk):
            raise _BadPattern
    ch = chunk[pos]
    pos += 1
    if pos >= len(chunk):  # the class never closes
        raise _BadPattern
    return ch, pos


def _class_regex(chunk: str, pos: int) -> tuple[str, int]:
    """Regex for the ``[...]`` class starting after ``[`` at ``pos``; returns (regex, position after ``]``)."""
    negated = pos < len(chunk) and chunk[pos] == "^"
    if negated:
        pos += 1
    ranges: list[str] = []
    count = 0
    while True:
        if pos < len(chunk) and chunk[pos] == "]" and count > 0:
            pos += 1
            break
        lo, pos = _class_char(chunk, pos)
        hi = lo
        if chunk[pos] == "-":
            hi, pos = _class_char(chunk, pos + 1)
        count += 1
        if lo <= hi:  # Go accepts an inverted range; it just never matches
            ranges.append(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}")
    body = "".join(ranges)
    # Unlike '?', a class may match '/' (Go checks the separator only for '*' and '?').
    if negated:
        return (f"[^{body}]" if body else r"[\s\S]"), pos
    return (f"[{body}]" if body else "(?!)"), pos


def _chunk_regex(chunk: str) -> str:
    out: list[str] = []
    pos = 0
    while pos < len(chunk):
        ch = chunk[pos]
        if ch == "[":
            piece, pos = _class_regex(chunk, pos + 1)
            out.append(piece)
            continue
        if ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            pos += 1
            if pos >= len(chunk):
                raise _BadPattern
            out.append(re.escape(chunk[pos]))
        else:
            out.append(re.escape(ch))
        pos += 1
    return "".join(out)


@lru_cache(maxsize=512)
def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        chunks = [(star, _chunk_regex(chunk)) for star, chunk in _split_chunks(pattern)]
    except _BadPattern:
        return None
    parts = [r"\A"]
    for index, (star, body) in enumerate(chunks):
        last = index == len(chunks) - 1
        if not star:
            parts.append(body)
        elif last:
            parts.append(f"[^/]*{body}")
        else:
            parts.append(f"(?>[^/]*?{body})")
    parts.append(r"\Z")
    return re.compile("".join(parts), re.DOTALL)


def is_valid_pattern(pattern: str) -> bool:
    return _compile(pattern) is not None


def go_match(pattern: str, name: str) -> bool:
    """True when ``name`` matches the Go ``filepath.Match`` pattern; a malformed pattern matches nothing."""
    compiled = _compile(pattern)
    return compiled is not None and compiled.match(name) is not None
