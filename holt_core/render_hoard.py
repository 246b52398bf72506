"""Text for ``hoard`` (protocol 7.4) and the JSON and time formats ``watch`` shares: pure functions, no I/O.

Works on any artefact (the pydantic ``Artefact`` or the light ``ArtefactRecord``), so ``holt hoard`` renders
without loading the models. Every string that came from Redis goes through ``sanitise_text`` before it is part
of a human-readable line, so a payload cannot drive the terminal. JSON output is escaped by the encoder; on top
of that DEL, C1 controls and bidi overrides (which JSON leaves raw) are written as ``\\uXXXX``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

from holt_core.record_basics import ArtefactFields, artefact_event
from holt_core.sanitise import sanitise_text

OutputFormat = Literal["default", "jsonl"]

# ---------------------------------------------------------------------------------------------
# JSON


_JSON_RAW_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]")


def json_text(obj: Any, *, indent: int | None = None) -> str:
    """JSON for a terminal or a pipe: UTF-8 kept, every control or bidi character escaped."""
    if indent is None:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    else:
        text = json.dumps(obj, ensure_ascii=False, indent=indent)
    # These characters can only occur inside JSON strings, where a \u escape means the same thing.
    return _JSON_RAW_UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def rfc3339_utc(ms: int) -> str:
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clock(ms: int, tz: tzinfo) -> str:
    """Local wall-clock time ``HH:MM:SS.mmm``."""
    return datetime.fromtimestamp(ms // 1000, tz).strftime("%H:%M:%S") + f".{ms % 1000:03d}"


# ---------------------------------------------------------------------------------------------
# hoard (protocol 7.4)

_TYPE_ABBREVIATIONS = {
    "TerraformCode": "TfCode",
    "TerraformDocumentation": "TfDocs",
    "FormattedDocumentation": "FmtDocs",
    "PackagedModule": "Package",
    "GoalDefined": "Goal",
    "ToolExecutionFailure": "Failure",
}
_ROW = "{:<10} {:<5} {:<10} {:<18} {:<8} {}"


def short_type(type_name: str) -> str:
    if type_name in _TYPE_ABBREVIATIONS:
        return _TYPE_ABBREVIATIONS[type_name]
    shown = sanitise_text(type_name)
    return shown[:17] + "..." if len(shown) > 20 else shown


def short_age(created_at_ms: int, now_ms: int) -> str:
    """``42s``, ``5m``, ``3h``, ``2d``; ``-`` for an unknown time."""
    if created_at_ms <= 0:
        return "-"
    seconds = max(now_ms - created_at_ms, 0) // 1000
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def format_age(created_at_ms: int, now_ms: int) -> str:
    age = short_age(created_at_ms, now_ms)
    return age if age == "-" else f"{age} ago"


def payload_preview(payload: str) -> str:
    """The first non-blank line, trimmed, at most 40 characters; ``-`` when there is none."""
    first = next((line.strip() for line in payload.split("\n") if line.strip()), "")
    if not first:
        return "-"
    shown = sanitise_text(first)
    return shown[:37] + "..." if len(shown) > 40 else shown


def hoard_row(artefact: ArtefactFields, now_ms: int) -> str:
    return _ROW.format(
        artefact.id[:8],
        "-" if artefact.version <= 1 else f"v{artefact.version}",
        short_type(artefact.type),
        sanitise_text(artefact.produced_by_role) or "-",
        format_age(artefact.created_at_ms, now_ms),
        payload_preview(artefact.payload),
    )


def hoard_table(artefacts: Sequence[ArtefactFields], instance: str, now_ms: int) -> str:
    """The default ``hoard`` listing, ending in a newline."""
    if not artefacts:
        return f"No artefacts found for instance '{instance}'\n"
    lines = [
        f"Artefacts for instance '{instance}':",
        "",
        _ROW.format("ID", "VER", "TYPE", "BY", "AGE", "PAYLOAD"),
        _ROW.format("-" * 10, "-" * 5, "-" * 10, "-" * 18, "-" * 8, "-" * 40),
        *(hoard_row(a, now_ms) for a in artefacts),
        "",
        f"{len(artefacts)} {'artefact' if len(artefacts) == 1 else 'artefacts'} found",
    ]
    return "\n".join(lines) + "\n"


def hoard_jsonl(artefacts: Iterable[ArtefactFields]) -> str:
    return "".join(json_text(artefact_event(a)) + "\n" for a in artefacts)


def artefact_pretty_json(artefact: ArtefactFields) -> str:
    """Get mode: the artefact as 2-space-indented JSON, ending in a newline."""
    return json_text(artefact_event(artefact), indent=2) + "\n"
