"""Holt's records and their two wire encodings (protocol sections 1-3).

Every record has a *hash form* (how it sits in a Redis hash: ints as decimal strings, lists and objects
as JSON text, booleans as 1/0) and an *event form* (the JSON published on pub/sub, with nested arrays
and objects). Readers accept what the Go version writes: ``null`` for empty lists, missing fields,
``\\u003c`` escapes and unknown fields. Writers produce what the Go version accepts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from holt_core.errors import MalformedRecord
from holt_core.record_basics import (  # defined without pydantic, for the light readers; re-exported here
    ARTEFACT_FIELDS as ARTEFACT_FIELDS,
)
from holt_core.record_basics import (
    StructuralType as StructuralType,
)
from holt_core.record_basics import (
    artefact_event,
)
from holt_core.record_basics import (
    dumps as dumps,
)
from holt_core.record_basics import (
    is_uuid as is_uuid,
)
from holt_core.record_basics import (
    new_id as new_id,
)
from holt_core.record_basics import (
    now_ms as now_ms,
)


def _list_json(items: list[str]) -> str:
    # Most lists in a claim are empty, and claims are written several times a hop.
    return dumps(items) if items else "[]"


class ClaimStatus(StrEnum):
    PENDING_REVIEW = "pending_review"
    PENDING_PARALLEL = "pending_parallel"
    PENDING_EXCLUSIVE = "pending_exclusive"
    PENDING_ASSIGNMENT = "pending_assignment"
    COMPLETE = "complete"
    TERMINATED = "terminated"

    @property
    def is_open(self) -> bool:
        return self not in (ClaimStatus.COMPLETE, ClaimStatus.TERMINATED)


class BidType(StrEnum):
    REVIEW = "review"
    CLAIM = "claim"
    EXCLUSIVE = "exclusive"
    IGNORE = "ignore"

    @classmethod
    def sanitise(cls, value: str) -> BidType:
        """Any unknown value counts as ``ignore`` (protocol 3.5)."""
        try:
            return cls(value)
        except ValueError:
            return cls.IGNORE


class Phase(StrEnum):
    REVIEW = "review"
    PARALLEL = "parallel"
    EXCLUSIVE = "exclusive"


# ---------------------------------------------------------------------------------------------
# Lenient readers for hash fields, shared by every model.


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _json_list(value: Any) -> Any:
    """JSON-in-hash arrays: ``""`` and ``null`` mean empty (Go nil slices)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.strip()
        if value in ("", "null"):
            return []
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a JSON array: {exc.msg}") from None
    return value


def _json_object(value: Any) -> Any:
    """JSON-in-hash objects: ``""`` (and ``null``) mean absent."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        if value in ("", "null"):
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a JSON object: {exc.msg}") from None
    return value


def _lenient_int(value: Any) -> int:
    """Go parses these leniently: anything unparsable reads as 0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        return 0


def _go_bool(value: Any) -> bool:
    """Go ``strconv.ParseBool``; anything else is false."""
    if isinstance(value, bool):
        return value
    return str(value).strip() in ("1", "t", "T", "TRUE", "true", "True")


def _decode_hash(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "record"
    return f"{where}: {first['msg']}"


def _check_uuid(value: str, what: str) -> str:
    if not is_uuid(value):
        raise ValueError(f"{what} must be a lower-case UUID, got {value[:60]!r}")
    return value


# Validation context of records read back from Redis: what holt refuses to write is still read (and shown
# sanitised), so one hostile record never hides the rest.
STORED: dict[str, bool] = {"stored": True}


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, use_enum_values=False)

    @classmethod
    def _validate_or_raise(cls, data: dict[str, Any], where: str) -> Self:
        try:
            return cls.model_validate(data, context=STORED)
        except ValidationError as exc:
            raise MalformedRecord(where, _describe(exc)) from None


# ---------------------------------------------------------------------------------------------
# Artefact (protocol 1.3 / 2.1)



_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def is_clean_artefact_type(value: str) -> bool:
    """An artefact type is a name shown on every screen and in the audit: no control characters."""
    return _CONTROL.search(value) is None


def check_artefact_type(value: str) -> str:
    if not is_clean_artefact_type(value):
        raise ValueError("artefact type may not contain control characters")
    return value


class Artefact(_Record):
    id: str
    logical_id: str
    version: int = Field(ge=1)
    structural_type: StructuralType
    type: str = Field(min_length=1)
    payload: str = ""
    source_artefacts: list[str] = Field(default_factory=list)
    produced_by_role: str = Field(min_length=1)
    created_at_ms: int = 0

    @field_validator("id", "logical_id")
    @classmethod
    def _ids(cls, v: str) -> str:
        return _check_uuid(v, "id")

    @field_validator("type")
    @classmethod
    def _type(cls, v: str, info: ValidationInfo) -> str:
        if info.context and info.context.get("stored"):
            return v  # read back from Redis (anyone may have written it): shown sanitised, never refused
        return check_artefact_type(v)

    @field_validator("source_artefacts", mode="before")
    @classmethod
    def _sources(cls, v: Any) -> Any:
        return _json_list(v)

    @field_validator("source_artefacts")
    @classmethod
    def _source_ids(cls, v: list[str]) -> list[str]:
        for item in v:
            _check_uuid(item, "source_artefacts element")
        return v

    @field_validator("created_at_ms", mode="before")
    @classmethod
    def _created(cls, v: Any) -> int:
        return _lenient_int(v)

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v: Any) -> Any:
        # Go uses strconv.Atoi: a plain decimal integer or the read fails.
        if isinstance(v, str):
            if not re.fullmatch(r"[+-]?\d+", v.strip()):
                raise ValueError(f"version must be a decimal integer, got {v[:40]!r}")
            return int(v)
        return v

    # -- hash form --
    def to_hash(self) -> dict[str, str]:
        return {
            "id": self.id,
            "logical_id": self.logical_id,
            "version": str(self.version),
            "structural_type": self.structural_type.value,
            "type": self.type,
            "payload": self.payload,
            "source_artefacts": dumps(self.source_artefacts),
            "produced_by_role": self.produced_by_role,
            "created_at_ms": str(self.created_at_ms),
        }

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any], key: str = "artefact") -> Artefact:
        data = _decode_hash(raw)
        if not data:
            raise MalformedRecord(key, "empty hash")
        return cls._validate_or_raise(dict(data), key)

    # -- event form --
    def to_event(self) -> dict[str, Any]:
        return artefact_event(self)

    def to_json(self) -> str:
        return dumps(self.to_event())

    @classmethod
    def from_event(cls, obj: Any, where: str = "artefact event") -> Artefact:
        if not isinstance(obj, dict):
            raise MalformedRecord(where, "not a JSON object")
        return cls._validate_or_raise(obj, where)

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "artefact event") -> Artefact:
        return cls.from_event(_loads(text, where), where)


def _loads(text: str | bytes, where: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedRecord(where, f"invalid JSON: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Claim (protocol 1.4 / 1.5 / 2.2)


class PhaseState(_Record):
    current: Phase
    granted_agents: list[str] = Field(default_factory=list)
    received: dict[str, str] = Field(default_factory=dict)
    all_bids: dict[str, str] = Field(default_factory=dict)
    start_time_ms: int = 0

    @field_validator("granted_agents", mode="before")
    @classmethod
    def _granted(cls, v: Any) -> Any:
        return [] if v is None else v

    @field_validator("received", "all_bids", mode="before")
    @classmethod
    def _maps(cls, v: Any) -> Any:
        return {} if v is None else v

    @field_validator("start_time_ms", mode="before")
    @classmethod
    def _start(cls, v: Any) -> int:
        return _lenient_int(v)

    def sanitised_bids(self) -> dict[str, BidType]:
        return {name: BidType.sanitise(bid) for name, bid in self.all_bids.items()}


class GrantQueue(_Record):
    paused_at_ms: int = 0
    agent_name: str = ""
    position: int = 0


CLAIM_FIELDS = (
    "id",
    "artefact_id",
    "status",
    "granted_review_agents",
    "granted_parallel_agents",
    "granted_exclusive_agent",
    "additional_context_ids",
    "termination_reason",
    "phase_state",
    "grant_queue",
    "last_grant_agent",
    "last_grant_time",
    "artefact_expected",
    "granted_agent_image_id",
)


class Claim(_Record):
    id: str
    artefact_id: str
    status: ClaimStatus
    granted_review_agents: list[str] = Field(default_factory=list)
    granted_parallel_agents: list[str] = Field(default_factory=list)
    granted_exclusive_agent: str = ""
    additional_context_ids: list[str] = Field(default_factory=list)
    termination_reason: str = ""
    phase_state: PhaseState | None = None
    grant_queue: GrantQueue | None = None
    last_grant_agent: str = ""
    last_grant_time: int = 0
    artefact_expected: bool = False
    granted_agent_image_id: str = ""

    @field_validator("id", "artefact_id")
    @classmethod
    def _ids(cls, v: str) -> str:
        return _check_uuid(v, "id")

    @field_validator("granted_review_agents", "granted_parallel_agents", "additional_context_ids", mode="before")
    @classmethod
    def _lists(cls, v: Any) -> Any:
        return _json_list(v)

    @field_validator("phase_state", "grant_queue", mode="before")
    @classmethod
    def _objects(cls, v: Any) -> Any:
        return _json_object(v)

    @field_validator("last_grant_time", mode="before")
    @classmethod
    def _grant_time(cls, v: Any) -> int:
        return _lenient_int(v)

    @field_validator("artefact_expected", mode="before")
    @classmethod
    def _expected(cls, v: Any) -> bool:
        return _go_bool(v)

    @property
    def granted_agents(self) -> list[str]:
        """Every agent holding a grant on this claim, in grant order."""
        names = [*self.granted_review_agents, *self.granted_parallel_agents]
        if self.granted_exclusive_agent:
            names.append(self.granted_exclusive_agent)
        return names

    # -- hash form: all 14 fields, always (protocol 1.4) --
    def to_hash(self) -> dict[str, str]:
        return {
            "id": self.id,
            "artefact_id": self.artefact_id,
            "status": self.status.value,
            "granted_review_agents": _list_json(self.granted_review_agents),
            "granted_parallel_agents": _list_json(self.granted_parallel_agents),
            "granted_exclusive_agent": self.granted_exclusive_agent,
            "additional_context_ids": _list_json(self.additional_context_ids),
            "termination_reason": self.termination_reason,
            "phase_state": dumps(self.phase_state.model_dump(mode="json")) if self.phase_state else "",
            "grant_queue": dumps(self.grant_queue.model_dump(mode="json")) if self.grant_queue else "",
            "last_grant_agent": self.last_grant_agent,
            "last_grant_time": str(self.last_grant_time),
            "artefact_expected": "1" if self.artefact_expected else "0",
            "granted_agent_image_id": self.granted_agent_image_id,
        }

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any], key: str = "claim") -> Claim:
        data = _decode_hash(raw)
        if not data:
            raise MalformedRecord(key, "empty hash")
        return cls._validate_or_raise(dict(data), key)

    # -- event form: six fields always, the rest only when non-empty (protocol 2.2) --
    def to_event(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "artefact_id": self.artefact_id,
            "status": self.status.value,
            "granted_review_agents": list(self.granted_review_agents),
            "granted_parallel_agents": list(self.granted_parallel_agents),
            "granted_exclusive_agent": self.granted_exclusive_agent,
        }
        if self.additional_context_ids:
            out["additional_context_ids"] = list(self.additional_context_ids)
        if self.termination_reason:
            out["termination_reason"] = self.termination_reason
        if self.phase_state is not None:
            out["phase_state"] = self.phase_state.model_dump(mode="json")
        if self.grant_queue is not None:
            out["grant_queue"] = self.grant_queue.model_dump(mode="json")
        if self.last_grant_agent:
            out["last_grant_agent"] = self.last_grant_agent
        if self.last_grant_time:
            out["last_grant_time"] = self.last_grant_time
        if self.artefact_expected:
            out["artefact_expected"] = True
        if self.granted_agent_image_id:
            out["granted_agent_image_id"] = self.granted_agent_image_id
        return out

    def to_json(self) -> str:
        return dumps(self.to_event())

    @classmethod
    def from_event(cls, obj: Any, where: str = "claim event") -> Claim:
        if not isinstance(obj, dict):
            raise MalformedRecord(where, "not a JSON object")
        return cls._validate_or_raise(obj, where)

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "claim event") -> Claim:
        return cls.from_event(_loads(text, where), where)


# ---------------------------------------------------------------------------------------------
# Reviews (protocol 3.3, 2.3)


def is_approval(payload: str) -> bool:
    """A Review approves when its payload is an empty JSON object or array; anything else is feedback."""
    try:
        value = json.loads(payload)
    except (json.JSONDecodeError, RecursionError):
        return False
    return isinstance(value, dict | list) and len(value) == 0


def feedback_excerpt(payload: str, limit: int = 200) -> str:
    """The ``feedback`` of a ``review_rejected`` event: the first 200 bytes, then ``...``."""
    raw = payload.encode("utf-8", "replace")
    if len(raw) <= limit:
        return payload
    return raw[:limit].decode("utf-8", "ignore") + "..."


# ---------------------------------------------------------------------------------------------
# Grants and workflow events (protocol 2.3, 2.4)


class GrantNotification(_Record):
    """Published on ``holt:{inst}:agent:{name}:events``; keys sorted as Go writes them.

    ``artefact_id`` (the claim's target) is a Python addition: a pup that gets it reads the claim and its
    target in one round trip. Go pups ignore it; notifications without it (the Go orchestrator's) still parse.
    """

    claim_id: str
    claim_type: Phase | str
    event_type: str = "grant"
    artefact_id: str = ""

    @field_validator("artefact_id", mode="before")
    @classmethod
    def _artefact_id(cls, v: Any) -> Any:
        # Only a hint: a value that is not a string must not cost the grant itself.
        return v if isinstance(v, str) else ""

    def to_json(self) -> str:
        body = {"claim_id": self.claim_id, "claim_type": str(self.claim_type), "event_type": self.event_type}
        if self.artefact_id:
            body = {"artefact_id": self.artefact_id, **body}
        return dumps(body)


class WorkflowEventType(StrEnum):
    BID_SUBMITTED = "bid_submitted"
    CLAIM_GRANTED = "claim_granted"
    REVIEW_APPROVED = "review_approved"
    REVIEW_REJECTED = "review_rejected"
    FEEDBACK_CLAIM_CREATED = "feedback_claim_created"
    ARTEFACT_REWORKED = "artefact_reworked"


class WorkflowEvent(_Record):
    """The ``{"event": ..., "data": {...}}`` envelope; unknown event names are kept, not rejected."""

    event: str = Field(min_length=1)
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("data", mode="before")
    @classmethod
    def _data(cls, v: Any) -> Any:
        return {} if v is None else v

    def to_json(self) -> str:
        return dumps({"event": self.event, "data": self.data})

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "workflow event") -> WorkflowEvent:
        obj = _loads(text, where)
        if not isinstance(obj, dict):
            raise MalformedRecord(where, "not a JSON object")
        return cls._validate_or_raise(obj, where)
