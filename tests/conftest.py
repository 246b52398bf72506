"""Test harness: one real redis-server per test session, started through the product's own module.

Each test gets its own instance name, so tests never see each other's keys.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

# Isolate the suite from the developer's machine before anything reads the environment.
for _var in ("HOLT_REDIS_URL", "HOLT_OPERATOR", "HOLT_AUDIT_KEY", "NO_COLOR", "TEXTUAL_THEME", "FORCE_COLOR"):
    os.environ.pop(_var, None)
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="holt-t-"))
os.environ["HOLT_DATA_DIR"] = str(_SESSION_DIR / "data")
# Operator tokens are saved under the user's config dir: never the developer's own.
os.environ["XDG_CONFIG_HOME"] = str(_SESSION_DIR / "config")
os.environ["TZ"] = "UTC"

from holt_core.blackboard import Blackboard, connect_redis  # noqa: E402
from holt_core.embedded_redis import EmbeddedRedis, ServerStatus  # noqa: E402


@pytest.fixture(scope="session")
def redis_server() -> Iterator[ServerStatus]:
    server = EmbeddedRedis(_SESSION_DIR / "redis")
    status = server.start()
    try:
        yield status
    finally:
        server.stop()
        shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture
def redis_url(redis_server: ServerStatus) -> str:
    assert redis_server.url is not None
    return redis_server.url


@pytest.fixture
def instance() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def bb(redis_url: str, instance: str) -> AsyncIterator[Blackboard]:
    board = Blackboard(connect_redis(redis_url), instance)
    try:
        yield board
    finally:
        keys = [k async for k in board.redis.scan_iter(match=f"holt:{instance}:*", count=1000)]
        if keys:
            await board.redis.delete(*keys)
        await board.close()


@pytest.fixture
def cli_env(redis_url: str) -> dict[str, str]:
    """Environment for running the installed ``holt`` against the test server."""
    env = dict(os.environ)
    env["HOLT_REDIS_URL"] = redis_url
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    return env
