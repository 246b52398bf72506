"""Make text from the blackboard safe to show on a terminal.

Anything in Redis may have been written by an agent, a tool or another client, so a payload can carry
escape sequences that clear the screen, retitle the window or forge output. Every control character is
replaced by a visible stand-in: C0 controls by their Unicode "control picture" (ESC -> ␛), DEL by ␡, C1
controls and bidirectional overrides by ``\\uXXXX`` text. The rest of an escape sequence stays as plain,
harmless text (``␛[2J``).
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f"
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidi controls can reorder what the reader sees
    "\u2028\u2029"  # line/paragraph separators break line-oriented output
    "\ud800-\udfff]"  # lone surrogates (from JSON \\ud800 escapes) cannot even be encoded for output
)
_UNSAFE_KEEP_NL = re.compile(_UNSAFE.pattern.replace("\x0a-\x1f", "\x0b-\x1f"))
_ELLIPSIS = "…"


def _stand_in(match: re.Match[str]) -> str:
    ch = match.group(0)
    code = ord(ch)
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ .. ␟
    if code == 0x7F:
        return "\u2421"  # ␡
    if 0xD800 <= code <= 0xDFFF:
        return "\ufffd"
    return f"\\u{code:04x}"


def sanitise_text(s: str, *, keep_newlines: bool = False, max_len: int | None = None) -> str:
    """``s`` with every terminal control character replaced by a visible stand-in.

    Tabs become spaces (four where newlines are kept, as in a multi-line payload view; else one, to keep
    table cells on one line). With ``max_len``, the result is cut to at most that many characters, ending
    with ``…`` when cut.
    """
    text = s.replace("\t", "    " if keep_newlines else " ")
    if keep_newlines:
        text = _UNSAFE_KEEP_NL.sub(_stand_in, text.replace("\r\n", "\n"))
    else:
        text = _UNSAFE.sub(_stand_in, text)
    if max_len is not None and len(text) > max_len:
        text = (text[: max_len - 1] + _ELLIPSIS) if max_len > 0 else ""
    return text


def has_unsafe(s: str) -> bool:
    """True when ``s`` holds anything ``sanitise_text`` would replace (newlines and tabs included)."""
    return "\t" in s or _UNSAFE.search(s) is not None
