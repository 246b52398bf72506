"""Every source of non-determinism in the TUI, behind one object so tests can freeze it.

The clock (ages, the header clock, record timestamps), the displayed host, the theme, cursor blink and
animations all come from a ``TuiConfig``. ``TuiConfig.frozen()`` is what tests and snapshots use.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

FROZEN_NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _local_tz() -> tzinfo:
    return datetime.now().astimezone().tzinfo or UTC


@dataclass(frozen=True)
class TuiConfig:
    clock_ms: Callable[[], int] = _wall_ms
    monotonic: Callable[[], float] = time.monotonic
    tz: tzinfo = field(default_factory=_local_tz)
    host: str = field(default_factory=socket.gethostname)
    theme: str = "textual-dark"
    animations: bool = True
    cursor_blink: bool = True
    # How often the UI drains the event deque (seconds); 0.1 = 10 Hz.
    drain_interval_s: float = 0.1
    # Longest a drain applies feed items before it lets keys and painting in (the rest follows at once).
    drain_budget_s: float = 0.015
    # Artefacts fetched in the first page of the attach scan (the newest ones).
    first_page: int = 500
    # Widgets keep at most this many event-log and audit lines (the model keeps the rest out of widgets).
    max_log_lines: int = 20_000
    # Payload bytes shown in the inspector before it says "truncated".
    max_payload_chars: int = 200_000

    @classmethod
    def frozen(cls, now_ms: int = FROZEN_NOW_MS) -> TuiConfig:
        """No clock, no host, no blink, no animation: identical frames on every machine."""
        return cls(
            clock_ms=lambda: now_ms,
            monotonic=lambda: now_ms / 1000.0,
            tz=UTC,
            host="testhost",
            theme="textual-dark",
            animations=False,
            cursor_blink=False,
        )
