"""Breakpoints: which orchestration decisions to hold, and what a hit does.

A breakpoint matches a ``Decision`` on any combination of the target artefact's ``type`` (a Go-style
glob, as ``--type`` filters use), its ``structural_type``, its producing role, a granted role, the claim's
status and the decision kind, and a regular expression searched in the target artefact's payload (read by the
gate only when every other criterion of that breakpoint matched); criteria left empty match anything. An
optional hit condition decides which matches count as hits (``>=3``, ``==2``, ``>1``, ``%2`` for every second
one; a bare ``3`` means ``>=3``). ``hold`` holds only the matching claim; ``stop`` also puts the whole
instance under full control.
"""

from __future__ import annotations

import functools
import re
import secrets
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, field_validator

from holt_core.decisions import Decision, DecisionKind
from holt_core.errors import InvalidInput
from holt_core.globmatch import go_match, is_valid_pattern
from holt_core.models import ClaimStatus, StructuralType

_HIT = re.compile(r"^\s*(>=|==|>|%)?\s*(\d{1,9})\s*$")
PAYLOAD_REGEX_MAX = 256  # characters: a condition, not a program


class BreakpointAction(StrEnum):
    HOLD = "hold"
    STOP = "stop"


def parse_hit_condition(text: str) -> tuple[str, int]:
    match = _HIT.match(text)
    if match is None:
        raise InvalidInput(f"invalid hit condition {text!r}", hint="use >=N, ==N, >N or %N (N a whole number)")
    op, number = match.group(1) or ">=", int(match.group(2))
    if op == "%" and number == 0:
        raise InvalidInput("hit condition %0 never matches", hint="use %N with N >= 1")
    return op, number


def hit_condition_met(condition: str | None, count: int) -> bool:
    """True when the ``count``-th match (1-based) is a hit."""
    if not condition:
        return True
    op, number = parse_hit_condition(condition)
    if op == ">=":
        return count >= number
    if op == "==":
        return count == number
    if op == ">":
        return count > number
    return count % number == 0


def new_breakpoint_id() -> str:
    return f"bp-{secrets.token_hex(3)}"


class BreakpointSpec(BaseModel):
    """What an operator asks for; validated before anything is written."""

    model_config = ConfigDict(extra="forbid")

    artefact_type: str | None = None
    structural_type: str | None = None
    produced_by_role: str | None = None
    granted_role: str | None = None
    claim_status: str | None = None
    decision_kind: str | None = None
    payload_regex: str | None = None
    hit_condition: str | None = None
    action: BreakpointAction = BreakpointAction.HOLD
    enabled: bool = True

    @field_validator("artefact_type")
    @classmethod
    def _glob(cls, v: str | None) -> str | None:
        if v is not None and (not v or not is_valid_pattern(v)):
            raise ValueError(f"invalid artefact type pattern {v!r}")
        return v

    @field_validator("structural_type")
    @classmethod
    def _structural(cls, v: str | None) -> str | None:
        return _one_of(v, [s.value for s in StructuralType], "structural type")

    @field_validator("claim_status")
    @classmethod
    def _status(cls, v: str | None) -> str | None:
        return _one_of(v, [s.value for s in ClaimStatus], "claim status")

    @field_validator("decision_kind")
    @classmethod
    def _kind(cls, v: str | None) -> str | None:
        return _one_of(v, [k.value for k in DecisionKind], "decision kind")

    @field_validator("produced_by_role", "granted_role")
    @classmethod
    def _role(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("a role cannot be empty")
        return v

    @field_validator("payload_regex")
    @classmethod
    def _payload(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v:
            raise ValueError("a payload regex cannot be empty")
        if len(v) > PAYLOAD_REGEX_MAX:
            raise ValueError(f"payload regex longer than {PAYLOAD_REGEX_MAX} characters")
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"invalid payload regex {v!r}: {exc}") from None
        return v

    @field_validator("hit_condition")
    @classmethod
    def _hit(cls, v: str | None) -> str | None:
        if v is not None:
            parse_hit_condition(v)
        return v

    def criteria(self) -> dict[str, str]:
        fields = ("artefact_type", "structural_type", "produced_by_role", "granted_role", "claim_status",
                  "decision_kind", "payload_regex")
        return {name: value for name in fields if (value := getattr(self, name)) is not None}


def _one_of(value: str | None, allowed: list[str], what: str) -> str | None:
    if value is not None and value not in allowed:
        raise ValueError(f"unknown {what} {value!r} (one of: {', '.join(allowed)})")
    return value


@functools.lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


class Breakpoint(BreakpointSpec):
    id: str
    created_by: str
    created_at_ms: int

    def matches(self, decision: Decision) -> bool:
        """Every criterion but the payload (``matches_payload``, asked only when this is True)."""
        if self.decision_kind is not None and decision.kind.value != self.decision_kind:
            return False
        if self.artefact_type is not None and not go_match(self.artefact_type, decision.artefact_type):
            return False
        if self.structural_type is not None and decision.structural_type != self.structural_type:
            return False
        if self.produced_by_role is not None and decision.produced_by_role != self.produced_by_role:
            return False
        if self.granted_role is not None and self.granted_role not in decision.granted_roles:
            return False
        return self.claim_status is None or decision.claim_status == self.claim_status

    def matches_payload(self, payload: str | None) -> bool:
        """The payload criterion; an unreadable artefact (``None``) matches no payload regex."""
        if self.payload_regex is None:
            return True
        return payload is not None and _compiled(self.payload_regex).search(payload) is not None

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.criteria().items()] or ["every decision"]
        if self.hit_condition:
            parts.append(f"hit {self.hit_condition}")
        return " ".join(parts)


class BreakpointStatus(Breakpoint):
    """A breakpoint as listed: with its hit count."""

    hits: int = 0
