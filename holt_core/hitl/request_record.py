"""The light read of an open request: what ``holt questions`` and ``holt pending`` list, without pydantic.

``plain_open_request`` decodes a request hash (``HitlRequest.to_hash``) when every field of its JSON record is of
the plain type holt writes, and the request is open with no human act on it: then the pydantic model would read
it the same, and ``proofs.honour`` would leave it as it is (no act to prove, no decision to reopen). Anything
else, an odd but valid field, a malformed record, an approval, an answer or a decision, gives None: the caller
then reads the whole listing through ``RequestStore`` and the models, so every such request reads (or is
refused) exactly as before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from holt_core.hitl.kinds import Effect, GateSource, RequestKind

_KINDS = {k.value: k for k in RequestKind}
_SOURCES = frozenset(s.value for s in GateSource)
_EFFECTS = frozenset(e.value for e in Effect)

# Every field of HitlRequest by the plain JSON type holt writes (the model would accept more, through its fallback).
_TEXT = ("claim_id", "role", "workflow_id", "started_by", "artefact_id", "logical_id", "target_artefact_id",
         "producer", "text", "ask", "assignee", "action", "target", "risk", "digest", "post_review_id", "review_of",
         "bypassed_by", "on_expire", "default_answer", "decided_by", "reason", "justification",
         "decision_request_id", "decision_artefact_id", "decision_proof")
_INTS = ("rev", "updated_ms", "consumed_ms", "min_approvals", "deadline_ms", "escalation_level", "decided_ms")
_NUMBERS = ("expire_after_s", "peer_timeout_s")
_TEXT_LISTS = ("approver_roles", "answerer_roles", "scheduled")
_HOP_TEXT = ("claim_id", "outcome", "note")


class HopView(NamedTuple):
    to: str
    outcome: str


class StepView(NamedTuple):
    to: tuple[str, ...]


class RequestRecord(NamedTuple):
    """The fields of an open request the open-items list shows, with the attribute names of ``HitlRequest``."""

    id: str
    kind: RequestKind
    created_ms: int
    text: str
    risk: str
    deadline_ms: int
    role: str
    claim_id: str
    workflow_id: str
    started_by: str
    artefact_id: str
    action: str
    target: str
    plan: Any
    digest: str
    min_approvals: int
    approver_roles: tuple[str, ...]
    ladder: tuple[StepView, ...]
    escalation_level: int
    require_justification: bool
    hops: tuple[HopView, ...]
    assignee: str

    @property
    def for_humans(self) -> bool:
        return self.assignee == "human"

    def distinct_approvers(self) -> list[str]:
        return []  # a plain open request has no approval (one with approvals is read in full)


def _no_constant(text: str) -> Any:
    raise ValueError(text)


def _text(value: Any) -> bool:
    return type(value) is str


def _int(value: Any) -> bool:
    return type(value) is int


def _number(value: Any) -> bool:
    return type(value) is int or type(value) is float


def _texts(value: Any) -> bool:
    return type(value) is list and all(type(v) is str for v in value)


def _hops(value: Any) -> tuple[HopView, ...] | None:
    if type(value) is not list:
        return None
    out = []
    for hop in value:
        if type(hop) is not dict or not _text(hop.get("to")) or not _int(hop.get("at_ms")) \
                or not all(_text(hop[f]) for f in _HOP_TEXT if f in hop):
            return None
        out.append(HopView(hop["to"], hop.get("outcome", "")))
    return tuple(out)


def _ladder(value: Any) -> tuple[StepView, ...] | None:
    if type(value) is not list:
        return None
    out = []
    for step in value:
        if type(step) is not dict or not _number(step.get("after_s")) or not _texts(step.get("to", [])):
            return None
        out.append(StepView(tuple(step.get("to", []))))
    return tuple(out)


def _plain(data: dict[str, Any]) -> bool:
    """Every field present is of the plain type, and nothing needs ``honour``: open, no approval, no answer."""
    return (_text(data.get("id")) and _int(data.get("created_ms")) and data.get("kind") in _KINDS
            and data.get("status", "open") == "open"
            and not data.get("approvals", []) and type(data.get("approvals", [])) is list
            and data.get("answer") is None
            and data.get("source") in _SOURCES | {None} and data.get("effect", "none") in _EFFECTS
            and type(data.get("require_justification", False)) is bool
            and all(_text(data[f]) for f in _TEXT if f in data)
            and all(_int(data[f]) for f in _INTS if f in data)
            and all(_number(data[f]) for f in _NUMBERS if f in data)
            and all(_texts(data[f]) for f in _TEXT_LISTS if f in data))


def plain_open_request(raw: Mapping[str, str]) -> RequestRecord | None:
    """The open request in ``raw`` (a request hash) when it is plainly valid and has no human act on it, else None
    (read it through ``RequestStore``: see the module's docstring)."""
    rev = raw.get("rev") or ""
    if not (rev == "" or (rev.isascii() and rev.isdigit())):
        return None
    record = raw.get("record")
    if type(record) is not str or "\\ud" in record or "\\uD" in record:
        return None  # no record, or a \uD800-\uDFFF escape (a lone surrogate the model refuses): read in full
    try:
        data = json.loads(record, parse_constant=_no_constant)
        if type(data) is not dict or not _plain(data):
            return None
    except (TypeError, ValueError):  # not JSON, or an unhashable kind or status: read in full
        return None
    hops, ladder = _hops(data.get("hops", [])), _ladder(data.get("ladder", []))
    if hops is None or ladder is None:
        return None
    get = data.get
    return RequestRecord(
        id=data["id"], kind=_KINDS[data["kind"]], created_ms=data["created_ms"], text=get("text", ""),
        risk=get("risk", ""), deadline_ms=get("deadline_ms", 0), role=get("role", ""), claim_id=get("claim_id", ""),
        workflow_id=get("workflow_id", ""), started_by=get("started_by", ""), artefact_id=get("artefact_id", ""),
        action=get("action", ""), target=get("target", ""), plan=get("plan"), digest=get("digest", ""),
        min_approvals=get("min_approvals", 1), approver_roles=tuple(get("approver_roles", [])), ladder=ladder,
        escalation_level=get("escalation_level", 0), require_justification=get("require_justification", False),
        hops=hops, assignee=get("assignee", "human"))
