"""Test harness: one real redis-server per test session, started through the product's own module.

Each test gets its own instance name, so tests never see each other's keys. Under pytest-xdist (``make test``)
each worker process imports this module itself, so each has its own session dir, redis-server, HOLT_DATA_DIR
and XDG_CONFIG_HOME: workers share nothing but the machine.
"""

from __future__ import annotations

import atexit
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
atexit.register(shutil.rmtree, _SESSION_DIR, True)  # also the xdist controller's, which starts no server
os.environ["HOLT_DATA_DIR"] = str(_SESSION_DIR / "data")
# Operator tokens are saved under the user's config dir: never the developer's own.
os.environ["XDG_CONFIG_HOME"] = str(_SESSION_DIR / "config")
os.environ["TZ"] = "UTC"

from holt_core.blackboard import Blackboard, connect_redis  # noqa: E402
from holt_core.embedded_redis import EmbeddedRedis, ServerStatus  # noqa: E402

# The longest modules (20-60 s a test: a real terminal, the Go toolchain, Redis restarts, CLI round trips) go first,
# so that two workers never end with one of them alone on a long test. Whole modules move: order within a module,
# and module-scoped fixtures, stay as they are.
_LONG_FIRST = (
    "tui/test_terminal_demo.py",
    "test_demo_go_microservice.py",
    "tui/test_redis_restart_tui.py",
    "test_redis_restart.py",
    "test_hitl_questions.py",
    "test_hitl_approvals.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.path.as_posix()
        return next((i for i, name in enumerate(_LONG_FIRST) if path.endswith("/tests/" + name)), len(_LONG_FIRST))

    items.sort(key=rank)  # stable


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
