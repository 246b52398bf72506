"""Pieces every ``holt`` command module shares: running a coroutine, opening an instance, common options."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from holt_core.cli.output import warn
from holt_core.embedded_redis import resolve_redis_url
from holt_core.errors import HoltError, MalformedRecord, RedisUnavailable
from holt_core.instances import resolve_instance
from holt_core.redis_conn import connect_redis, open_client
from holt_core.redis_wire import loaded_errors
from holt_core.sanitise import sanitise_text

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from holt_core.blackboard import Blackboard
    from holt_core.board_reads import BoardReads

NameOpt = Annotated[
    str | None,
    typer.Option("--name", "-n", help="Instance name (default: the instance of this git workspace)."),
]
AsOpt = Annotated[
    str | None,
    typer.Option("--as", help="Act as this operator: admin credentials only, audited as impersonation "
                              "(default: the operator whose token you hold, see docs/security.md)."),
]
T = TypeVar("T")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    if isinstance(sys.stdout, io.TextIOWrapper):
        # An odd terminal encoding must not turn one emoji into a crash.
        sys.stdout.reconfigure(errors="replace")
    try:
        return asyncio.run(coro)
    except lost_connection() as exc:
        raise connection_failed(exc) from None
    except HoltError as err:
        # Messages can quote Redis keys and ids found by SCAN, which anyone could have written.
        err.message = sanitise_text(err.message)
        err.details = [sanitise_text(line) for line in err.details]
        err.hint = sanitise_text(err.hint) if err.hint else err.hint
        raise
    except BrokenPipeError:
        # The reader went away (holt hoard | head): stop quietly, and keep the interpreter from
        # complaining while it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None


def redis_client(url: str, *, decode: bool = True, client_name: str | None = None, light: bool = False) -> Redis:
    """A command's client. ``light``: the client without redis-py (``redis_conn.open_client``), for commands whose
    every call it answers (the reads); else redis-py's. No automatic retries: redis-py would otherwise reconnect
    a dropped subscription behind our back and the events published meanwhile would be lost without a word."""
    if light and decode:
        return open_client(url, client_name=client_name)
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return connect_redis(url, decode=decode, retry=Retry(NoBackoff(), 0), socket_connect_timeout=5,
                         client_name=client_name)


def lost_connection(*also: type[Exception]) -> tuple[type[Exception], ...]:
    """redis-py's connection and timeout errors (and ``also``), for an ``except`` clause (redis-py is not imported
    for it: ``redis_wire.loaded_errors``)."""
    return loaded_errors("ConnectionError", "TimeoutError", also=also)


def connection_failed(exc: Exception) -> RedisUnavailable:
    return RedisUnavailable(
        "Redis connection failed",
        details=[sanitise_text(str(exc))],
        hint="holt redis status shows which Redis holt uses",
    )


def warn_unreadable(bad: MalformedRecord) -> None:
    """One warning line naming a record a command skipped (it goes on with the rest)."""
    what = next((kind for kind in ("claim", "artefact") if f":{kind}:" in bad.key), "record")
    warn(f"Skipping malformed {what}: key={bad.key} (error: {bad.reason})")


@contextlib.asynccontextmanager
async def open_blackboard(
    name: str | None, *, url: str | None = None, client_name: str | None = None, light: bool = False
) -> AsyncIterator[Blackboard]:
    """The instance's blackboard for one command; ``light`` for the reads (see ``redis_client``)."""
    from holt_core.blackboard import Blackboard  # with the artefact models: not for commands that only use Redis

    async with _opened(Blackboard, name, url=url, client_name=client_name, light=light) as bb:
        yield bb


@contextlib.asynccontextmanager
async def open_reads(name: str | None, *, url: str | None = None,
                     client_name: str | None = None) -> AsyncIterator[BoardReads]:
    """The instance's blackboard for a read that needs no record model (hoard, questions, pending): the light
    client, and neither the models nor the transaction engine (``board_reads``)."""
    from holt_core.board_reads import BoardReads

    async with _opened(BoardReads, name, url=url, client_name=client_name, light=True) as board:
        yield board


B = TypeVar("B", bound="BoardReads")


@contextlib.asynccontextmanager
async def _opened(kind: type[B], name: str | None, *, url: str | None, client_name: str | None,
                  light: bool) -> AsyncIterator[B]:
    redis = redis_client(url or resolve_redis_url(start=False), client_name=client_name, light=light)
    bb: B | None = None
    try:
        instance = await resolve_instance(redis, name)
        bb = kind(redis, instance)
        bb.on_unreadable = warn_unreadable
        yield bb
    except lost_connection() as exc:
        raise connection_failed(exc) from None
    except loaded_errors("RedisError") as exc:  # e.g. an ACL that forbids a command: say so, no traceback
        raise HoltError(f"Redis refused the request: {sanitise_text(str(exc))}") from None
    finally:
        if bb is not None:
            bb.release()
        with contextlib.suppress(Exception):
            await redis.aclose()


def run_typer_app(app: typer.Typer, args: list[str] | None = None) -> None:
    """Console-script entry: user errors become one line and exit 1, never a traceback.

    Typer's standalone mode already turns usage errors into a message and exit 2.
    """
    from holt_core.cli.output import print_error

    try:
        app(args=args, prog_name="holt") if args is not None else app()
    except HoltError as err:
        print_error(err)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except FileNotFoundError:
        if _cwd_exists():
            raise
        print_error(HoltError("the current directory no longer exists: cd to an existing directory and try again"))
        sys.exit(1)


def _cwd_exists() -> bool:
    try:
        os.getcwd()
    except FileNotFoundError:
        return False
    return True
