"""The light record of one artefact: what holt-tui keeps per scanned hash and ``holt hoard`` lists (issue 14).

A pydantic ``Artefact`` per scanned hash cost ~180 us and ~2 kB each: 100k of them made an attach take tens of
seconds, and loading the models is a good part of a CLI read's start. ``ArtefactRecord`` is a named tuple built
straight from the Redis hash; a hash that the fast paths cannot prove valid goes through ``Artefact.from_hash``
(so a malformed record is refused with exactly the same reason, and an odd but valid one reads the same). The
payload is kept as the raw string Redis holds: it is parsed, pretty-printed or diffed only when something shows it.

The attach scan reads artefacts with HMGET (``HASH_FIELDS``, in a fixed order whoever wrote the hash) and
decodes a whole page at once (``records_from_rows``): each column is checked in C (one byte translation and
comparison for the UUID columns, one regex for the digits), and the records are built without a Python call
each. A page with anything unusual goes through ``_fast`` row by row.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any, NamedTuple

from holt_core.record_basics import ARTEFACT_FIELDS, StructuralType, artefact_event, is_uuid

if TYPE_CHECKING:
    from holt_core.models import Artefact

# The fields the list needs; ``payload`` is read with them (one round trip), never decoded here.
LIGHT_FIELDS = ("id", "logical_id", "version", "structural_type", "type", "source_artefacts",
                "produced_by_role", "created_at_ms")
# What the attach scan reads of each artefact (HMGET, in this order): the model's fields, as ``ArtefactRecord``
# holds them.
HASH_FIELDS: tuple[str, ...] = ARTEFACT_FIELDS
_KINDS: dict[str, StructuralType] = {k.value: k for k in StructuralType}


class ArtefactRecord(NamedTuple):
    """What the TUI knows of one artefact: the same attribute names as ``Artefact``, none validated twice.

    A tuple, so a page of them is built in C (``records_from_rows``); read-only like the pydantic model."""

    id: str
    logical_id: str
    version: int
    structural_type: StructuralType
    type: str
    payload: str
    source_artefacts: tuple[str, ...]
    produced_by_role: str
    created_at_ms: int

    def __repr__(self) -> str:
        return f"ArtefactRecord({self.type!r} v{self.version} {self.id})"

    def __eq__(self, other: object) -> bool:
        # Equal to the pydantic Artefact it stands for too (a recording replays as records).
        if not (isinstance(other, ArtefactRecord) or _is_model(other)):
            return False
        return bool(self.to_event() == other.to_event())  # type: ignore[attr-defined]

    def __ne__(self, other: object) -> bool:
        return not self == other

    @classmethod
    def of(cls, a: Artefact) -> ArtefactRecord:
        return cls(a.id, a.logical_id, a.version, a.structural_type, a.type, a.payload, tuple(a.source_artefacts),
                   a.produced_by_role, a.created_at_ms)

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any], key: str = "artefact") -> ArtefactRecord:
        """From an HGETALL reply; raises ``MalformedRecord`` exactly as ``Artefact.from_hash`` does."""
        fast = _fast(raw)
        if fast is not None:
            return fast
        from holt_core.models import Artefact  # the full validation, only for a hash the fast path cannot prove

        return cls.of(Artefact.from_hash(raw, key))

    @classmethod
    def from_event(cls, obj: Any, where: str = "artefact event") -> ArtefactRecord:
        from holt_core.models import Artefact

        return cls.of(Artefact.from_event(obj, where))

    def to_event(self) -> dict[str, Any]:
        # The same fields and form as the pydantic model's: one definition of the event.
        return artefact_event(self)


def _is_model(other: object) -> bool:
    """``other`` is a pydantic ``Artefact`` (if the models were never loaded, it cannot be one)."""
    models = sys.modules.get("holt_core.models")
    return models is not None and isinstance(other, models.Artefact)


# Unhashable, as the slotted record was (equality follows the event form, not the tuple).
ArtefactRecord.__hash__ = None  # type: ignore[assignment]


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


# ---------------------------------------------------------------------------------------------------------
# A page at once

# Every hex digit becomes "0"; every other byte stays itself. A column of UUIDs joined by newlines, translated,
# equals the same number of "00000000-0000-0000-0000-000000000000" lines exactly when each value is a UUID.
_HEX_TO_ZERO = bytes.maketrans(b"0123456789abcdef", b"0" * 16)
_UUID_SHAPE = b"00000000-0000-0000-0000-000000000000"
_MAX_SOURCES = 64  # more sources than this in one artefact: that page goes row by row
# The shape of a compact JSON list of k UUIDs (what holt and Go write), by its length (39k + 1; "[]" for none).
_SOURCES_SHAPE: dict[int, bytes] = {2: b"[]", **{39 * k + 1: b'["' + b'","'.join([_UUID_SHAPE] * k) + b'"]'
                                                 for k in range(1, _MAX_SOURCES + 1)}}
_POSITIVE_LINES = re.compile(r"(?:0*[1-9][0-9]*\n)*0*[1-9][0-9]*")
_DIGIT_LINES = re.compile(r"(?:[0-9]+\n)*[0-9]+")


def _uuid_column(column: Sequence[str]) -> bool:
    return "\n".join(column).encode("ascii").translate(_HEX_TO_ZERO) == b"\n".join(repeat(_UUID_SHAPE, len(column)))


def _sources_column(column: Sequence[str]) -> bool:
    shape = b"\n".join(map(_SOURCES_SHAPE.__getitem__, map(len, column)))
    return "\n".join(column).encode("ascii").translate(_HEX_TO_ZERO) == shape


def _sources(text: str) -> tuple[str, ...]:
    # Only for text ``_sources_column`` accepted: "[]" or a compact JSON list of UUIDs.
    if len(text) == 40:
        return (text[2:38],)
    if len(text) == 2:
        return ()
    return tuple(text[2:-2].split('","'))


def _columns_valid(columns: Sequence[Sequence[Any]]) -> bool:
    ids, logical, versions, kinds, types, payloads, sources, roles, created = columns
    try:
        return bool(_uuid_column(ids) and _uuid_column(logical) and _POSITIVE_LINES.fullmatch("\n".join(versions))
                    and _DIGIT_LINES.fullmatch("\n".join(created)) and set(kinds) <= _KINDS.keys() and all(types)
                    and all(roles) and None not in payloads and _sources_column(sources))
    except (TypeError, KeyError, UnicodeEncodeError):  # a missing field (None), an odd value: row by row
        return False


def records_from_rows(rows: Sequence[Any]) -> list[ArtefactRecord | None]:
    """Records from HMGET replies of ``HASH_FIELDS``, one per row, in order; None where a row needs the full
    read (a field missing, an odd but valid value, an error reply, a missing key): the caller reads those with
    HGETALL and ``ArtefactRecord.from_hash``, so every record reads exactly as ``Artefact.from_hash`` would."""
    if not rows:
        return []
    if all(type(r) is list and len(r) == len(HASH_FIELDS) for r in rows):
        columns = list(zip(*rows, strict=True))
        if _columns_valid(columns):
            ids, logical, versions, kinds, types, payloads, sources, roles, created = columns
            fields = zip(ids, logical, map(int, versions), map(_KINDS.__getitem__, kinds), types, payloads,
                         map(_sources, sources), roles, map(int, created), strict=True)
            return list(map(tuple.__new__, repeat(ArtefactRecord), fields))
    out: list[ArtefactRecord | None] = []
    for row in rows:
        if type(row) is not list or len(row) != len(HASH_FIELDS):
            out.append(None)
            continue
        out.append(_fast({k: v for k, v in zip(HASH_FIELDS, row, strict=True) if v is not None}))
    return out
