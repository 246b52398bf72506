"""Building apps for UI tests: a frozen config and a feed made of fixed items."""

from __future__ import annotations

from collections.abc import Callable

from holt_tui.app import HoltTui
from holt_tui.config import TuiConfig
from holt_tui.feed import FeedItem
from holt_tui.sources import CAPABILITIES, NullDebugSource, NullInboxSource, Sources


def fed_app(items: list[FeedItem], *, instance: str = "recipe", replay: bool = False, read_only: bool = False,
            sources: Sources | None = None) -> HoltTui:
    async def start(sink: Callable[[FeedItem], None]) -> None:
        for item in items:
            sink(item)

    return HoltTui(instance, start, config=TuiConfig.frozen(), replay=replay, read_only=read_only, sources=sources)


class ControlCapableDebug(NullDebugSource):
    """A debug source that claims every capability (for snapshots of the control keys; it changes nothing)."""

    def capabilities(self) -> frozenset[str]:
        return CAPABILITIES


def control_sources() -> Sources:
    return Sources(NullInboxSource(), ControlCapableDebug())
