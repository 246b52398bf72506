"""Durations and time specifications as Holt's users write them (protocol 7.5 and section 6).

Durations follow Go's ``time.ParseDuration`` (``1h30m``, ``1.5h``, ``500ms``, ``-2m``); config files may
also give a plain number of seconds. A time spec is an RFC 3339 timestamp or a duration meaning "that
long ago".
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from holt_core.errors import InvalidInput

_UNIT_SECONDS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5 micro sign
    "μs": 1e-6,  # U+03BC Greek mu; Go accepts both
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
# One "<number><unit>" element; a number needs a digit on at least one side of the point.
_ELEMENT = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})",
)
_SPEC_HELP = "use duration like '1h30m' or RFC3339 like '2025-10-29T13:00:00Z'"


def _go_duration(text: str) -> float | None:
    """Seconds for a Go duration string, or None when it is not one."""
    rest = text
    sign = 1.0
    if rest and rest[0] in "+-":
        sign = -1.0 if rest[0] == "-" else 1.0
        rest = rest[1:]
    if rest == "0":  # Go's only unit-less duration
        return 0.0
    if not rest:
        return None
    total = 0.0
    pos = 0
    while pos < len(rest):
        match = _ELEMENT.match(rest, pos)
        if match is None:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    return sign * total


def parse_duration(text: str | float, *, bare_seconds: bool = True) -> float:
    """Seconds in a Go-style duration (``"1h30m"``); with ``bare_seconds``, a plain number is seconds too."""
    if isinstance(text, bool):
        raise InvalidInput(f"invalid duration '{text}'", hint="use a duration like '30s', '5m' or '1h30m'")
    if isinstance(text, int | float):
        if not bare_seconds:
            raise InvalidInput(f"invalid duration '{text}' (missing unit)", hint="use a duration like '30s'")
        return float(text)
    stripped = text.strip()
    if bare_seconds and _PLAIN_NUMBER.fullmatch(stripped):
        return float(stripped)
    seconds = _go_duration(stripped)
    if seconds is None:
        raise InvalidInput(
            f"invalid duration '{text}'",
            hint="use a duration like '30s', '5m', '1h30m' or '500ms' (units: ns, us, ms, s, m, h)",
        )
    return seconds


def parse_rfc3339_ms(text: str) -> int | None:
    """Epoch milliseconds of an RFC 3339 timestamp (as Go's ``time.RFC3339`` parses it), else None."""
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, offset = match.group(7), match.group(8)
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
    if offset != "Z":
        sign = 1 if offset[0] == "+" else -1
        off_h, off_m = int(offset[1:3]), int(offset[4:6])
        if off_h > 23 or off_m > 59:
            return None
        moment -= sign * timedelta(hours=off_h, minutes=off_m)
    millis = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    if fraction:
        millis += int(fraction.ljust(3, "0")[:3])
    return millis


def parse_time_spec(text: str, now_ms: int, *, flag: str = "--since") -> int:
    """Epoch ms for ``--since``/``--until``: RFC 3339 first, else a Go duration meaning "that long ago"."""
    absolute = parse_rfc3339_ms(text)
    if absolute is not None:
        return absolute
    # The CLI flags take Go durations only: a bare "90" is as invalid as it is for the Go CLI.
    seconds = _go_duration(text.strip())
    if seconds is None:
        raise InvalidInput(f"invalid {flag}: invalid time specification: {text} ({_SPEC_HELP})")
    return now_ms - round(seconds * 1000)


def parse_time_range(since: str | None, until: str | None, now_ms: int) -> tuple[int | None, int | None]:
    """Both bounds of a time filter (None = unbounded); since must come strictly before until."""
    since_ms = parse_time_spec(since, now_ms, flag="--since") if since else None
    until_ms = parse_time_spec(until, now_ms, flag="--until") if until else None
    if since_ms is not None and until_ms is not None and since_ms >= until_ms:
        raise InvalidInput("--since must be before --until")
    return since_ms, until_ms
