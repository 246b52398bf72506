"""Entry point of ``holt-tui``: ``attach`` to a running instance, or ``replay`` a recording offline."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from holt_core.acl import viewer_url
from holt_core.errors import HoltError
from holt_core.identity import resolve_operator
from holt_core.keys import Keys
from holt_tui.config import TuiConfig

if TYPE_CHECKING:
    from holt_core.operators import Actor
    from holt_tui.app import HoltTui
    from holt_tui.feed import FeedItem
    from holt_tui.sources import Sources

# What waits for the first page to be on screen (the control planes, the garbage collector) waits no longer than
# this: a first page that takes longer does not hold up the inbox and the lease.
FIRST_PAGE_WAIT_S = 3.0

app = typer.Typer(
    name="holt-tui",
    help="holt-tui: a full-screen debugger that attaches to a running Holt instance.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command()
def attach(
    instance: Annotated[str, typer.Argument(help="Instance name (holt list shows them).")],
    redis_url: Annotated[str | None, typer.Option("--redis-url", help="Redis to use (default: as holt).")] = None,
    read_only: Annotated[bool, typer.Option("--read-only", help="Observe only: never take control.")] = False,
    record: Annotated[Path | None, typer.Option("--record", help="Save the event stream to FILE (JSON lines).")] = None,
    as_: Annotated[str | None, typer.Option("--as", help="Operator identity (default: $HOLT_OPERATOR).")] = None,
) -> None:
    """Attach to a running instance: scan, subscribe, and follow it live."""
    # Imported here, not above: the path to the first frame loads only what it uses (tests/tui/test_attach_start.py).
    from holt_core.embedded_redis import resolve_redis_url
    from holt_tui.reader import Reader, check_attach

    Keys(instance)  # validates the name: one line, no traceback
    url = redis_url or resolve_redis_url(start=False)

    async def prepare() -> tuple[Actor | None, str]:
        await check_attach(viewer_url(url), instance)
        return await attach_actor(url, as_) if not read_only else (None, "")

    actor, why = asyncio.run(prepare())
    if actor is None and not read_only:
        read_only = True
        typer.echo(f"holt-tui: attaching read-only: {why}", err=True)
    operator = actor.operator if actor else resolve_operator(as_)
    config = TuiConfig()
    recorder = None
    if record:
        from holt_tui.recording import Recorder

        recorder = Recorder(record, instance, now_ms=config.clock_ms, monotonic=config.monotonic)
    from holt_tui.app import HoltTui

    # Acting (inbox, debugger) goes through the operator's own Redis user; with none, Redis refuses every write.
    sources = later_sources_for(actor.url if actor else viewer_url(url), instance, operator,
                                lambda: first_page_shown(tui), impersonated_by=actor.impersonated_by if actor else "")

    async def start(sink: Callable[[FeedItem], None]) -> None:
        collect_after_first_page(tui)
        # The reader only reads: it connects as the viewer user, also after a lost connection. An explicit
        # --redis-url is kept; otherwise Redis is looked up again after each lost connection.
        await Reader(viewer_url(url), instance, sink, sources, config,
                     resolve_url=None if redis_url else known_viewer_url).run()

    tui = HoltTui(instance, start, config=config, sources=sources, read_only=read_only, operator=operator,
                  recorder=recorder)
    tui.run()  # prints one line on quit: detached, or quit while Redis was unreachable


async def first_page_shown(tui: HoltTui) -> None:
    """Until the first page of the scan is on screen (or ``FIRST_PAGE_WAIT_S`` passed)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(tui.first_page_shown.wait(), FIRST_PAGE_WAIT_S)


def collect_after_first_page(tui: HoltTui) -> None:
    """Switch the cyclic garbage collector on again (``run`` starts without it) once the first page is on screen.
    Start-up allocates hundreds of thousands of long-lived objects (modules, classes,
    pydantic schemas, Textual's styles) that the collector would otherwise scan some 200 times before the first
    frame, for about 2,000 objects of garbage; the app freezes what the scan loaded (``gc.freeze``) as it goes."""

    async def collect() -> None:
        await first_page_shown(tui)
        gc.enable()

    tui.run_worker(collect(), name="gc", exit_on_error=False)


def known_viewer_url() -> str | None:
    """The reader's URL after a lost connection: Redis looked up again (``known_redis_url``, which is the admin's
    in local mode), connecting as the viewer user all the same."""
    from holt_core.embedded_redis import known_redis_url

    known = known_redis_url()
    return viewer_url(known) if known else None


async def attach_actor(url: str, as_operator: str | None) -> tuple[Actor | None, str]:
    """Who the TUI acts as, proven to Redis as in the CLI (holt_core/operators.py ``authenticate``): the operator
    whose token it holds; ``--as`` only with the admin identity (impersonation, recorded on every act). With the
    admin identity and no token, the admin acts as ``$HOLT_OPERATOR`` (the login name), recorded the same way.
    ``(None, why)`` when there is no identity to act as: the TUI then attaches read-only."""
    from holt_core.operators import NotAuthenticated, authenticate

    try:
        return await authenticate(url, as_operator), ""
    except NotAuthenticated as err:
        if as_operator is None:
            try:
                return await authenticate(url, resolve_operator(None)), ""  # admin only
            except NotAuthenticated:
                pass
        return None, err.message + (f" ({err.hint})" if err.hint else "")


def attach_sources_for(url: str, instance: str, operator: str, *, impersonated_by: str = "") -> Sources:
    from holt_core.cli.common import redis_client
    from holt_tui.core_sources import attach_sources

    return attach_sources(redis_client(url, client_name="holt-tui-control"), Keys(instance), operator,
                          impersonated_by=impersonated_by)


def later_sources_for(url: str, instance: str, operator: str, ready: Callable[[], Awaitable[None]], *,
                      impersonated_by: str = "") -> Sources:
    """``attach_sources_for``'s sources, built when first used after ``ready`` (the first page is on screen): the
    reader subscribes to their channels (named by ``Keys``) from the start, nothing else needs them before."""
    from holt_tui.sources import deferred_sources

    keys = Keys(instance)
    return deferred_sources(lambda: attach_sources_for(url, instance, operator, impersonated_by=impersonated_by),
                            ready, inbox_channels=[keys.hitl_events], debug_channels=[keys.debug_events])


@app.command("replay")
def replay_cmd(
    file: Annotated[Path, typer.Argument(help="A recording made with holt-tui attach --record.")],
    speed: Annotated[float, typer.Option("--speed", help="1 = real time, 0 = all at once.")] = 0.0,
    at: Annotated[str | None, typer.Option(
        "--at", help="Open in history mode at change N (1, 2, ...) or at a time (2026-01-01T10:00:00Z; no zone = "
                     "local time); [ ] then step back and forward.")] = None,
) -> None:
    """Open a recording offline, read-only, in the same UI."""
    from holt_tui.app import HoltTui
    from holt_tui.recording import load_recording, replay
    from holt_tui.timeline import parse_moment

    config = TuiConfig()
    moment = None
    if at is not None:
        try:
            moment = parse_moment(at, config.tz)
        except ValueError as err:
            raise HoltError(str(err)) from None
        if speed:
            raise HoltError("--at loads the whole recording at once: leave out --speed")
    recording = load_recording(file)

    async def start(sink: Callable[[FeedItem], None]) -> None:
        collect_after_first_page(tui)
        await replay(recording, sink, speed=speed, clock=tui.set_feed_time)

    tui = HoltTui(recording.instance, start, config=config, replay=True, history_at=moment)
    tui.run()


def run() -> None:
    """The console script: without the cyclic garbage collector until the first frame (``collect_after_first_page``)."""
    gc.disable()
    try:
        from holt_core.cli.common import run_typer_app

        run_typer_app(app)
    finally:
        gc.enable()


if __name__ == "__main__":
    run()
