"""Structured logs: one JSON object per line, the shape the Go version uses (protocol 4.15).

Each record has ``timestamp`` (RFC 3339 UTC), ``level``, ``component``, ``instance``, ``event_type`` and
the event's own fields. Stdlib logging is enough; this module only formats.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname.lower(),
        }
        fields = getattr(record, "holt_fields", None)
        if isinstance(fields, dict):
            body.update(fields)
        else:
            body["event_type"] = "message"
            body["message"] = record.getMessage()
        if record.exc_info:
            body["error"] = self.formatException(record.exc_info)
        return json.dumps(body, sort_keys=True, default=str, ensure_ascii=False)


class EventLogger:
    """Logs ``event_type`` records for one component of one instance."""

    def __init__(self, component: str, instance: str, name: str | None = None) -> None:
        self._log = logging.getLogger(name or f"holt.{component}")
        self.component = component
        self.instance = instance

    def event(self, event_type: str, level: int = logging.INFO, **fields: Any) -> None:
        if not self._log.isEnabledFor(level):
            return
        payload = {"component": self.component, "instance": self.instance, "event_type": event_type, **fields}
        self._log.log(level, event_type, extra={"holt_fields": payload})

    def info(self, event_type: str, **fields: Any) -> None:
        self.event(event_type, logging.INFO, **fields)

    def warning(self, event_type: str, **fields: Any) -> None:
        self.event(event_type, logging.WARNING, **fields)

    def error(self, event_type: str, **fields: Any) -> None:
        self.event(event_type, logging.ERROR, **fields)


def configure(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Send every ``holt.*`` logger to ``stream`` (stderr by default) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("holt")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
