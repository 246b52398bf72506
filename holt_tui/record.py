"""The light record of one artefact the TUI keeps per scanned hash (issue 14).

A pydantic ``Artefact`` per scanned hash cost ~180 us and ~2 kB each: 100k of them made an attach take
tens of seconds. ``ArtefactRecord`` is a slotted plain object built straight from the Redis hash; a hash
that the fast path cannot prove valid goes through ``Artefact.from_hash`` (so a malformed record is
refused with exactly the same reason, and an odd but valid one reads the same). The payload is kept as
the raw string Redis holds: it is parsed, pretty-printed or diffed only when something shows it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from holt_core.models import Artefact, StructuralType, is_uuid

# The fields the list needs; ``payload`` is read with them (one round trip), never decoded here.
LIGHT_FIELDS = ("id", "logical_id", "version", "structural_type", "type", "source_artefacts",
                "produced_by_role", "created_at_ms")
_KINDS: dict[str, StructuralType] = {k.value: k for k in StructuralType}


class ArtefactRecord:
    """What the TUI knows of one artefact: the same attribute names as ``Artefact``, none validated twice."""

    __slots__ = (
        "created_at_ms",
        "id",
        "logical_id",
        "payload",
        "produced_by_role",
        "source_artefacts",
        "structural_type",
        "type",
        "version",
    )

    def __init__(self, id: str, logical_id: str, version: int, structural_type: StructuralType, type: str,
                 payload: str, source_artefacts: tuple[str, ...], produced_by_role: str,
                 created_at_ms: int) -> None:
        self.id = id
        self.logical_id = logical_id
        self.version = version
        self.structural_type = structural_type
        self.type = type
        self.payload = payload
        self.source_artefacts = source_artefacts
        self.produced_by_role = produced_by_role
        self.created_at_ms = created_at_ms

    def __repr__(self) -> str:
        return f"ArtefactRecord({self.type!r} v{self.version} {self.id})"

    def __eq__(self, other: object) -> bool:
        # Equal to the pydantic Artefact it stands for too (a recording replays as records).
        return isinstance(other, ArtefactRecord | Artefact) and self.to_event() == other.to_event()

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def of(cls, a: Artefact) -> ArtefactRecord:
        return cls(a.id, a.logical_id, a.version, a.structural_type, a.type, a.payload, tuple(a.source_artefacts),
                   a.produced_by_role, a.created_at_ms)

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any], key: str = "artefact") -> ArtefactRecord:
        """From an HGETALL reply; raises ``MalformedRecord`` exactly as ``Artefact.from_hash`` does."""
        fast = _fast(raw)
        return fast if fast is not None else cls.of(Artefact.from_hash(raw, key))

    @classmethod
    def from_event(cls, obj: Any, where: str = "artefact event") -> ArtefactRecord:
        return cls.of(Artefact.from_event(obj, where))

    def to_event(self) -> dict[str, Any]:
        # The same fields and form as the pydantic model's: one definition of the event.
        return Artefact.to_event(self)  # type: ignore[arg-type]


def _fast(raw: Mapping[Any, Any]) -> ArtefactRecord | None:
    """The record when every field is plainly valid (what holt and the Go version write), else None."""
    get: Any = raw.get
    a_id, logical, version, kind, a_type, role = (get("id"), get("logical_id"), get("version"),
                                                  get("structural_type"), get("type"), get("produced_by_role"))
    payload, sources_text, created = get("payload", ""), get("source_artefacts", ""), get("created_at_ms", "0")
    try:
        if not (is_uuid(a_id) and is_uuid(logical) and a_type and role and version.isascii() and version.isdigit()
                and created.isascii() and created.isdigit() and type(a_type) is str and type(role) is str
                and type(payload) is str and type(sources_text) is str):
            return None
    except (TypeError, AttributeError):  # a field missing or not text: the full validation says why
        return None
    structural = _KINDS.get(kind)
    n = int(version)
    if structural is None or n < 1:
        return None
    if sources_text in ("", "[]", "null"):
        sources: tuple[str, ...] = ()
    elif len(sources_text) == 40 and sources_text[:2] == '["' and sources_text[-2:] == '"]' \
            and is_uuid(sources_text[2:38]):
        sources = (sources_text[2:38],)  # one source, the common case: no JSON parse
    else:
        try:
            parsed = json.loads(sources_text)
        except ValueError:
            return None
        if not isinstance(parsed, list) or not all(isinstance(s, str) and is_uuid(s) for s in parsed):
            return None
        sources = tuple(parsed)
    return ArtefactRecord(a_id, logical, n, structural, a_type, payload, sources, role, int(created))
