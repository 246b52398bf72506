"""Structured logs: one JSON object per line, the shape the Go version uses (protocol 4.15).

Each record has ``timestamp`` (RFC 3339 UTC), ``level``, ``component``, ``instance``, ``event_type`` and
the event's own fields (``claim_id``, ``artefact_id`` where they apply), plus ``workflow_id`` and ``trace_id``
when the code that logs runs inside ``log_context`` (or with an OpenTelemetry span current). Stdlib logging is
enough; this module only formats. Observers (metrics, traces) see every event as data, at once, without a
handler of their own (``add_observer``); ``RotatingFile`` is the size-rotated file a supervisor copies a
component's output into.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import contextvars
import io
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TextIO, cast

_LINE = json.JSONEncoder(sort_keys=True, default=str, ensure_ascii=False)
_stamp_second = -1
_stamp = ""


def _json_line(created: float, level: str, fields: dict[str, Any]) -> str:
    global _stamp_second, _stamp
    second = int(created)
    if second != _stamp_second:  # timestamps have whole seconds: format each second once
        _stamp_second, _stamp = second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
    return _LINE.encode({"timestamp": _stamp, "level": level, **fields})


# The component and instance of this process, for lines logged without an EventLogger (library warnings).
_PROCESS: dict[str, str] = {}


def set_process_identity(component: str, instance: str) -> None:
    _PROCESS.update(component=component, instance=instance)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "holt_fields", None)
        if not isinstance(fields, dict):
            fields = {**_PROCESS, "event_type": "message", "message": record.getMessage()}
        if record.exc_info:
            fields = {**fields, "error": self.formatException(record.exc_info)}
        return _json_line(record.created, record.levelname.lower(), fields)


# INFO events logged inside an event loop are handed to the handlers later, after the work that produced
# them: a record costs about 15 us to build, format and write (several times that in a process that has
# just woken up), and an orchestration hop logs about a dozen across its processes, which at INFO more than
# doubled a hop's latency. They wait DEFER_S, then go out SLICE at a time with short pauses between, so the
# loop is never held up long by a backlog. Warnings and errors go out at once, after everything pending,
# so a file keeps its order; so does everything logged outside an event loop. Each record keeps the time
# of its event. A SIGKILL can lose the INFO lines of the last few tens of milliseconds, never a warning.
DEFER_S = 0.02
SLICE = 16
SLICE_GAP_S = 0.001
_BACKLOG = 2000  # past this many waiting, everything goes out at once: memory stays bounded


class _Deferred:
    def __init__(self) -> None:
        self._items: collections.deque[tuple[logging.Logger, int, str, dict[str, Any], float]] = \
            collections.deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Events come from the loop's thread, but a flush can come from any (a worker thread logging a
        # warning, exit): taking items is guarded, and a timer is only ever touched from its loop's thread.
        self._guard = threading.RLock()

    def add(self, loop: asyncio.AbstractEventLoop, logger: logging.Logger, level: int, event_type: str,
            payload: dict[str, Any]) -> None:
        with self._guard:
            if self._loop is not loop:
                self.flush()  # left over from a loop that ended before its timer fired
                self._loop, self._timer = loop, None
            self._items.append((logger, level, event_type, payload, time.time()))
            if len(self._items) > _BACKLOG:
                self.flush()
            elif self._timer is None:
                self._timer = loop.call_later(DEFER_S, self._next_slice)

    def _next_slice(self) -> None:
        with self._guard:
            self._timer = None
            self._write(SLICE)
            if self._items and self._loop is not None:
                self._timer = self._loop.call_later(SLICE_GAP_S, self._next_slice)

    def flush(self) -> None:
        with self._guard:
            self._write(len(self._items))  # a timer still pending finds nothing and stops

    def _write(self, count: int) -> None:
        items = [self._items.popleft() for _ in range(min(count, len(self._items)))]
        if not items:
            return
        direct = _direct_handler()
        if direct is not None and all(_reaches_only_root(logger) for logger, *_ in items):
            # The usual case under holt: the lines are formatted here and written in one go (a third of
            # what a LogRecord and the handler machinery cost per line).
            direct.write_lines([_json_line(created, logging.getLevelName(level).lower(), payload)
                                for _, level, _, payload, created in items])
            return
        for logger, level, event_type, payload, created in items:  # other handlers listen: the full path
            record = logger.makeRecord(logger.name, level, "(holt)", 0, event_type, (), None,
                                       extra={"holt_fields": payload})
            record.created = created
            logger.handle(record)


class _LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``configure`` installs; it also takes a batch of lines formatted outside the logging
    machinery, in one write."""

    def write_lines(self, lines: list[str]) -> None:
        with self.lock:  # type: ignore[union-attr]
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.flush()
            except Exception:  # as logging does: a log that cannot be written never stops holt
                self.handleError(logging.makeLogRecord({"msg": lines[0]}))


def _direct_handler() -> _LineHandler | None:
    """The one handler of ``holt`` when it is the one ``configure`` installed and nothing else listens."""
    root = logging.getLogger("holt")
    if root.propagate or len(root.handlers) != 1 or type(root.handlers[0]) is not _LineHandler:
        return None
    handler = root.handlers[0]
    return handler if not handler.filters and handler.level == logging.NOTSET else None


def _reaches_only_root(logger: logging.Logger) -> bool:
    return (not logger.handlers and not logger.filters and logger.propagate
            and logger.parent is logging.getLogger("holt"))


_DEFERRED = _Deferred()
atexit.register(_DEFERRED.flush)


def flush_logs() -> None:
    """Hand every deferred INFO event to the handlers now."""
    _DEFERRED.flush()


Observer = Callable[[int, dict[str, Any]], None]
_OBSERVERS: list[Observer] = []
_CONTEXT: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("holt_log_context", default=None)
_trace_ids: Callable[[], dict[str, str]] | None = None


def add_observer(observer: Observer) -> None:
    """``observer(level, payload)`` sees every event, whatever the log level, as it happens (keep it cheap)."""
    if observer not in _OBSERVERS:
        _OBSERVERS.append(observer)


def remove_observer(observer: Observer) -> None:
    with contextlib.suppress(ValueError):
        _OBSERVERS.remove(observer)


def set_trace_id_source(source: Callable[[], dict[str, str]] | None) -> None:
    """Where ``trace_id`` (and ``span_id``) come from: the current span when tracing is on."""
    global _trace_ids
    _trace_ids = source


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (``workflow_id``, ``trace_id``...) to every event logged inside, in this task."""
    current = _CONTEXT.get()
    token = _CONTEXT.set({**current, **fields} if current else dict(fields))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class EventLogger:
    """Logs ``event_type`` records for one component of one instance."""

    def __init__(self, component: str, instance: str, name: str | None = None) -> None:
        self._log = logging.getLogger(name or f"holt.{component}")
        self.component = component
        self.instance = instance

    def event(self, event_type: str, level: int = logging.INFO, **fields: Any) -> None:
        enabled = self._log.isEnabledFor(level)
        if not enabled and not _OBSERVERS:
            return
        payload = {"component": self.component, "instance": self.instance, "event_type": event_type, **fields}
        context = _CONTEXT.get()
        if context:
            payload = {**context, **payload}
        if _trace_ids is not None and "trace_id" not in payload:
            payload.update(_trace_ids())
        for observer in _OBSERVERS:
            try:
                observer(level, payload)
            except Exception:  # an observer never stops the code that logs
                pass
        if not enabled:
            return
        if level < logging.WARNING:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                _DEFERRED.add(loop, self._log, level, event_type, payload)
                return
        _DEFERRED.flush()
        self._log.log(level, event_type, extra={"holt_fields": payload})

    def info(self, event_type: str, **fields: Any) -> None:
        self.event(event_type, logging.INFO, **fields)

    def warning(self, event_type: str, **fields: Any) -> None:
        self.event(event_type, logging.WARNING, **fields)

    def error(self, event_type: str, **fields: Any) -> None:
        self.event(event_type, logging.ERROR, **fields)


def configure(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Send every ``holt.*`` logger to ``stream`` (stderr by default) as JSON lines."""
    handler = _LineHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("holt")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


# ---------------------------------------------------------------------------------------------
# Size-rotated log files

ENV_LOG_MAX_BYTES = "HOLT_LOG_MAX_BYTES"
ENV_LOG_BACKUPS = "HOLT_LOG_BACKUPS"
DEFAULT_LOG_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_LOG_BACKUPS = 5


def log_rotation_settings() -> tuple[int, int]:
    """(max bytes per file, files kept) from the environment; 0 bytes turns rotation off."""
    def number(name: str, default: int) -> int:
        text = os.environ.get(name, "")
        return int(text) if text.isdigit() else default

    return number(ENV_LOG_MAX_BYTES, DEFAULT_LOG_MAX_BYTES), number(ENV_LOG_BACKUPS, DEFAULT_LOG_BACKUPS)


class RotatingFile:
    """An append-only file that moves itself to ``.1`` (``.1`` to ``.2``...) once it passes ``max_bytes``.

    Takes raw chunks of a child's output: a rotation happens only at the end of a line, so no line is split
    between two files (a file can pass ``max_bytes`` by the rest of the line in progress). ``holt logs -f``
    follows the new file (it notices the inode change).
    """

    def __init__(self, path: Path, max_bytes: int | None = None, backups: int | None = None, *,
                 on_open: Callable[[int], None] | None = None) -> None:
        default_max, default_backups = log_rotation_settings()
        self.path = path
        self.max_bytes = default_max if max_bytes is None else max_bytes
        self.backups = default_backups if backups is None else backups
        self._on_open = on_open  # told the descriptor of each file opened (the first and every new one)
        self._file = self._open()
        self._size = self._file.tell()
        self._at_line_end = True

    def _open(self) -> BinaryIO:
        file = self.path.open("ab", buffering=0)
        if self._on_open is not None:
            self._on_open(file.fileno())
        return file

    def write(self, data: bytes) -> int:
        written = len(data)
        if self.max_bytes > 0 and self._size > 0 and self._size + len(data) > self.max_bytes:
            if not self._at_line_end:  # finish the line in progress first
                cut = data.find(b"\n") + 1
                if not cut:
                    self._write(data)
                    return written
                self._write(data[:cut])
                data = data[cut:]
            self._rotate()
        self._write(data)
        return written

    def _write(self, data: bytes) -> None:
        if data:
            self._file.write(data)
            self._size += len(data)
            self._at_line_end = data.endswith(b"\n")

    def _rotate(self) -> None:
        self._file.close()
        if self.backups > 0:
            for index in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._file = self._open()
        self._size = 0

    def close(self) -> None:
        self._file.close()


class RotatingStream(io.TextIOBase):
    """A text stream over a ``RotatingFile``, for a logging handler: what holt's own processes write to their
    log file rotates by size like their children's output."""

    def __init__(self, file: RotatingFile) -> None:
        super().__init__()
        self.file = file

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.file.write(text.encode("utf-8", "replace"))
        return len(text)

    def close(self) -> None:
        self.file.close()
        super().close()


def _onto_stdio(fd: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)


def log_to_file(path: Path, *, stdio: bool = False, level: int = logging.INFO) -> None:
    """``configure`` to ``path`` (rotated by size, ``HOLT_LOG_MAX_BYTES`` / ``HOLT_LOG_BACKUPS``). With ``stdio``
    the process's stdout and stderr also point at the current file, after every rotation too, so a traceback or
    a stray print lands in the log that is being written, not in a rotated one (a detached process's log)."""
    configure(cast(TextIO, RotatingStream(RotatingFile(path, on_open=_onto_stdio if stdio else None))), level)


def add_log_file(path: Path) -> None:
    """Also write holt's JSON log lines to ``path``, rotated by size (stderr keeps its own handler)."""
    handler = _LineHandler(RotatingStream(RotatingFile(path)))
    handler.setFormatter(JsonFormatter())
    logging.getLogger("holt").addHandler(handler)
