"""The parts of holt's records that need no pydantic: ids, the clock, compact JSON, the artefact kinds and the
artefact's event form. ``holt_core.models`` re-exports them; the light readers (``artefact_record``) use them
without loading the models."""

from __future__ import annotations

import json
import re
import time
import uuid
from enum import StrEnum
from typing import Any, Protocol

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def new_id() -> str:
    return str(uuid.uuid4())


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def is_uuid(text: str) -> bool:
    return bool(_UUID.match(text))


# One encoder for the process: json.dumps with non-default settings builds a new one on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(obj: Any) -> str:
    """Compact JSON, UTF-8 kept as is (Go accepts it; escapes are only needed for control characters)."""
    return _ENCODER.encode(obj)


class StructuralType(StrEnum):
    STANDARD = "Standard"
    REVIEW = "Review"
    QUESTION = "Question"
    ANSWER = "Answer"
    FAILURE = "Failure"
    TERMINAL = "Terminal"


ARTEFACT_FIELDS = (
    "id",
    "logical_id",
    "version",
    "structural_type",
    "type",
    "payload",
    "source_artefacts",
    "produced_by_role",
    "created_at_ms",
)


class ArtefactFields(Protocol):
    """What an artefact has, whichever class holds it (the pydantic ``Artefact`` or the light ``ArtefactRecord``)."""

    @property
    def id(self) -> str: ...
    @property
    def logical_id(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def structural_type(self) -> StructuralType: ...
    @property
    def type(self) -> str: ...
    @property
    def payload(self) -> str: ...
    @property
    def source_artefacts(self) -> Any: ...
    @property
    def produced_by_role(self) -> str: ...
    @property
    def created_at_ms(self) -> int: ...


def artefact_event(a: ArtefactFields) -> dict[str, Any]:
    """An artefact's event form (protocol 2.1): the one definition, for the model and the light record."""
    return {
        "id": a.id,
        "logical_id": a.logical_id,
        "version": a.version,
        "structural_type": a.structural_type.value,
        "type": a.type,
        "payload": a.payload,
        "source_artefacts": list(a.source_artefacts),
        "produced_by_role": a.produced_by_role,
        "created_at_ms": a.created_at_ms,
    }
