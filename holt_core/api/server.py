"""The approvals API server: FastAPI on uvicorn, one process per instance, started by ``holt up``.

``python -m holt_core.api.server --instance NAME --workspace DIR`` binds ``api.host``:``api.port`` from holt.yml
(127.0.0.1 and a free port by default), then logs ``api_ready`` with its URL; the supervisor records that URL
in the instance's registry record (``api_url``). The OpenAPI document is served at ``/openapi.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from holt_core.api import chat, routes
from holt_core.api.context import ApiContext
from holt_core.api.settings import ApiSettings
from holt_core.blackboard import Blackboard
from holt_core.config import CONFIG_FILE, load_config
from holt_core.embedded_redis import resolve_redis_url
from holt_core.errors import HoltError
from holt_core.keys import validate_instance_name
from holt_core.logs import EventLogger, configure, flush_logs

COMPONENT = "api"
READY_EVENT = "api_ready"
ENV_SUPERVISOR_PID = "HOLT_SUPERVISOR_PID"
_PARENT_CHECK_S = 1.0


def build_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="holt approvals API",
        version="1",
        description="What waits for people in one holt instance, and deciding it as an authenticated operator "
                    "(bearer token from `holt operator add`). The same rules as the holt CLI.",
    )
    app.state.ctx = ctx
    app.include_router(routes.router)
    app.include_router(chat.router)

    @app.exception_handler(HTTPException)
    async def _problem(_request: Request, exc: HTTPException) -> JSONResponse:
        body = exc.detail if isinstance(exc.detail, dict) else {"detail": exc.detail}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    return app


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (port 0: the kernel picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise HoltError(f"the approvals API cannot listen on {host}:{port}: {exc.strerror}",
                        hint="set api.port in holt.yml to a free port, or 0 for any") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextlib.asynccontextmanager
async def running(ctx: ApiContext, sock: socket.socket) -> AsyncIterator[uvicorn.Server]:
    """Serve on ``sock`` in this event loop until the block ends (tests use this too)."""
    server = uvicorn.Server(uvicorn.Config(build_app(ctx), log_level="warning", access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise HoltError("the approvals API stopped while starting")
            await asyncio.sleep(0.01)
        yield server
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)


async def serve(instance: str, workspace: Path) -> None:
    log = EventLogger(COMPONENT, instance)
    config = load_config(workspace / CONFIG_FILE)
    settings: ApiSettings = config.api
    url = resolve_redis_url(start=False)
    bb = Blackboard.from_url(url, instance)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watch = _watch_supervisor(stop)
    sock = bind(settings.host, settings.port)
    from holt_core.health import HealthService  # /healthz, /readyz, /metrics, as every component has

    health = HealthService(url, instance, COMPONENT)
    try:
        await health.start()
        async with running(ApiContext(bb, settings, config.hitl, redis_url=url), sock):
            log.info(READY_EVENT, url=url_of(sock), pid=os.getpid())
            flush_logs()
            await stop.wait()
    finally:
        await health.stop()
        if watch is not None:
            watch.cancel()
        sock.close()
        await bb.close()
        log.info("api_stopped")


def _watch_supervisor(stop: asyncio.Event) -> asyncio.Task[None] | None:
    """Under a supervisor, stop when it is gone (re-parented), like every other component."""
    expected = os.environ.pop(ENV_SUPERVISOR_PID, "")
    if not expected.isdigit():
        return None

    async def watch(pid: int) -> None:
        while not stop.is_set():
            if os.getppid() != pid:
                stop.set()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _PARENT_CHECK_S)

    return asyncio.create_task(watch(int(expected)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m holt_core.api.server", description=__doc__)
    parser.add_argument("--instance", required=True)
    parser.add_argument("--workspace", required=True, type=Path)
    args = parser.parse_args(argv)
    configure()
    try:
        validate_instance_name(args.instance)
        asyncio.run(serve(args.instance, args.workspace.resolve()))
    except HoltError as err:
        EventLogger(COMPONENT, args.instance).error("api_failed", message=err.message, hint=err.hint or "")
        flush_logs()
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
