"""The drain applies a big feed in slices, and the event loop runs between them: the screen's refresh, the reader
and every timer get their turn while a 100k scan loads (queued straight onto Textual's message queue, the slices
ran back to back as one long stall)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from holt_core.record_basics import StructuralType
from holt_tui.app import HoltTui
from holt_tui.config import TuiConfig
from holt_tui.feed import FeedItem, ScanPage
from holt_tui.sources import null_sources
from tests.tui.fixtures import art


async def _idle(sink: Callable[[FeedItem], None]) -> None:
    await asyncio.Event().wait()


def _pages(count: int, size: int) -> list[ScanPage]:
    made = [art(1 + n, "Step" if n % 50 else "GoalDefined", "Agent", "x", [] if n % 50 == 0 else [n], at=n,
                kind=StructuralType.STANDARD) for n in range(count * size)]
    return [ScanPage(made[i:i + size], [], first=i == 0, last=i + size >= len(made))
            for i in range(0, len(made), size)]


async def test_the_event_loop_runs_between_drain_slices() -> None:
    config = TuiConfig(animations=False, cursor_blink=False, drain_budget_s=0.001)
    app = HoltTui("x", _idle, config=config, sources=null_sources(), read_only=True)
    async with app.run_test(size=(120, 40)):
        seen: list[int] = []  # the feed's length each time another task of the loop ran

        async def watch() -> None:
            while True:
                seen.append(len(app.feed))
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        pages = _pages(30, 100)
        app.feed.extend(pages[1:])  # queued as a reader that got ahead of the drain leaves them
        app.push(pages[0])
        for _ in range(2000):
            if not app.feed and len(app.model.artefacts) == 3000:
                break
            await asyncio.sleep(0.005)
        watcher.cancel()
        assert len(app.model.artefacts) == 3000
        # Other tasks ran while the feed was being worked off, not only before and after it.
        assert len({n for n in seen if 0 < n < len(pages) - 1}) >= 5, sorted(set(seen))
