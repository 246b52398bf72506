"""Helpers the instance commands (up, down, list, forage, logs) share: a short-lived Redis connection, this
workspace's instance, streaming output that survives ``| head``, the last lines of a log."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import typer

from holt_core.instances import list_records, resolve_instance, supervisor_alive, workspace_root
from holt_core.redis_conn import connect_redis, open_client

if TYPE_CHECKING:
    from redis.asyncio import Redis


@contextlib.contextmanager
def quiet_stdout_errors() -> Iterator[None]:
    """Streaming output survives an odd terminal encoding and a reader that goes away (``| head``)."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")
    try:
        yield
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's final flush does not complain again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None


@contextlib.asynccontextmanager
async def redis_connection(url: str, *, read_only: bool = False) -> AsyncIterator[Redis]:
    """A client for one command; ``read_only`` (registry reads) takes the light one (``redis_conn.open_client``)."""
    redis = open_client(url) if read_only else connect_redis(url)
    try:
        yield redis
    finally:
        with contextlib.suppress(Exception):
            await redis.aclose()


async def resolve_here(redis: Redis, name: str | None) -> str:
    """``--name``, else this workspace's one live instance, else the registry's answer (with its errors)."""
    if name is not None:
        return await resolve_instance(redis, name)
    root = str(workspace_root())
    live = [r.name for r in await list_records(redis)
            if r.workspace_path == root and supervisor_alive(r.supervisor_pid)]
    if len(live) == 1:
        return live[0]  # stopped records of the same workspace do not make it ambiguous
    return await resolve_instance(redis, None)


def tail(path: Path, count: int) -> list[str]:
    try:
        with path.open("rb") as f:
            return tail_lines(f, count)[0]
    except OSError:
        return []


def tail_lines(f: BinaryIO, count: int) -> tuple[list[str], int]:
    """The last ``count`` complete lines, read backwards in blocks (logs can be large), and the offset
    where they end: a line still being written is left for ``_follow``."""
    end = f.seek(0, os.SEEK_END)
    pos, data = end, b""
    while pos > 0 and data.count(b"\n") <= count:
        step = min(65536, pos)
        pos -= step
        f.seek(pos)
        data = f.read(step) + data
    complete, _, partial = data.rpartition(b"\n")
    lines = complete.decode("utf-8", "replace").splitlines()
    return (lines[-count:] if count > 0 else []), end - len(partial)

