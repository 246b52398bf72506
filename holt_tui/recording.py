"""Recording the feed to a JSON-lines file, and reading it back for ``holt-tui replay``.

Line 1 is a header (``{"kind": "header", "version": 1, "instance": ..., "started_ms": ...}``); every other
line is one feed item with ``t``, the seconds since the recording started. The first items are the
initial scan pages, so a recording opens on the same view the operator had.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from holt_core.errors import HoltError
from holt_tui.feed import RECORDING_VERSION, ConnectionSeen, FeedItem, dumps_line, item_from_json


class Recorder:
    def __init__(self, path: Path, instance: str, *, now_ms: Callable[[], int], monotonic: Callable[[], float]) -> None:
        try:
            self._file: IO[str] | None = path.open("w", encoding="utf-8")
        except OSError as exc:
            raise HoltError(f"cannot write the recording {path}: {exc.strerror}") from None
        self._monotonic = monotonic
        self._t0 = monotonic()
        header = {"kind": "header", "version": RECORDING_VERSION, "instance": instance, "started_ms": now_ms()}
        self._file.write(json.dumps(header) + "\n")

    def write(self, item: FeedItem) -> None:
        if self._file is not None:
            self._file.write(dumps_line(self._monotonic() - self._t0, item) + "\n")

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass(frozen=True)
class Recording:
    instance: str
    started_ms: int
    items: list[tuple[float, FeedItem]]


def load_recording(path: Path) -> Recording:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise HoltError(f"cannot read the recording {path}: {exc.strerror}") from None
    if not lines:
        raise HoltError(f"{path} is empty, not a holt-tui recording")
    try:
        header = json.loads(lines[0])
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("kind") != "header":
        raise HoltError(f"{path} is not a holt-tui recording (no header line)")
    if header.get("version") != RECORDING_VERSION:
        raise HoltError(f"{path} is a version {header.get('version')} recording; this holt-tui reads version "
                        f"{RECORDING_VERSION}")
    items: list[tuple[float, FeedItem]] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            items.append((float(obj.get("t", 0.0)), item_from_json(obj)))
        except (json.JSONDecodeError, ValueError, KeyError, TypeError, HoltError) as exc:
            raise HoltError(f"{path}:{number}: not a valid recording line ({str(exc)[:120]})") from None
    return Recording(str(header.get("instance", "?")), int(header.get("started_ms", 0)), items)


async def replay(recording: Recording, sink: Callable[[FeedItem], None], *, speed: float,
                 clock: Callable[[int], None] | None = None) -> None:
    """Feed a recording's items to ``sink``; ``speed`` 0 sends everything at once, 1 keeps the timing.

    ``clock`` is told each item's recorded time (ms) before it is fed: history mode dates the claim states
    it sees by the recording's clock, not by when the replay happened to send them.
    """
    sink(ConnectionSeen("replay", "replaying a recording"))
    loop = asyncio.get_running_loop()
    start = loop.time()
    for t, item in recording.items:
        if speed > 0:
            delay = start + t / speed - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        if isinstance(item, ConnectionSeen):
            continue  # the replay's own connection state stays "replay"
        if clock is not None:
            clock(recording.started_ms + int(t * 1000))
        sink(item)
    sink(ConnectionSeen("ended", "end of recording"))
