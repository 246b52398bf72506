"""The feed: what the Redis reader (or a replayed recording) hands the live model, one item at a time.

Items are plain dataclasses with a JSON form, so the exact stream the model saw can be recorded
(``--record``) and replayed offline; a recording is the deterministic fixture of a UI test.
Raw strings from Redis travel unmodified here; widgets sanitise when they draw.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from holt_core.artefact_record import ArtefactRecord
from holt_core.audit import AuditRecord
from holt_core.models import Artefact, Claim, WorkflowEvent
from holt_tui.sources import DebugSnapshot, InboxSnapshot

RECORDING_VERSION = 1


@dataclass(frozen=True)
class ClaimState:
    """A claim as last read from Redis, with its bids hash (bids live in their own key)."""

    claim: Claim
    bids: dict[str, str] = field(default_factory=dict)
    note: str = ""  # the orchestrator's ``holt_note`` field (e.g. why a claim went dormant)
    created_ms: int = 0  # ``holt_created_at_ms``: of an artefact's claims the newest speaks for it (0 = unknown)


@dataclass(frozen=True)
class InstanceInfo:
    name: str
    status: str = "unknown"  # running | stopped | unknown (from the instance registry)
    workspace: str = ""
    orchestrator_alive: bool = False  # the orchestrator's lock key exists (it refreshes it every few s)
    orchestrator_seen_ms: int = 0
    roles: tuple[str, ...] = ()  # agent roles from the workspace's holt.yml, when readable


@dataclass(frozen=True)
class ScanPage:
    """Part of a (re)scan. ``first`` starts a scan; ``last`` ends it (the model is then complete)."""

    artefacts: Sequence[ArtefactRecord | Artefact]  # the reader sends light records; tests may send models
    claims: list[ClaimState]
    audit: list[AuditRecord] = field(default_factory=list)
    first: bool = False
    last: bool = False
    resync: bool = False  # a rescan after the connection was lost: events may have been missed
    total_hint: int = 0  # artefacts the index says exist (for the "loading n/N" indicator)


@dataclass(frozen=True)
class ArtefactSeen:
    artefact: ArtefactRecord | Artefact


@dataclass(frozen=True)
class ClaimSeen:
    state: ClaimState


@dataclass(frozen=True)
class WorkflowSeen:
    event: WorkflowEvent
    ts_ms: int


@dataclass(frozen=True)
class AuditSeen:
    record: AuditRecord


@dataclass(frozen=True)
class InstanceSeen:
    info: InstanceInfo


@dataclass(frozen=True)
class ConnectionSeen:
    state: str  # connecting | scanning | live | lost | replay | ended
    detail: str = ""


@dataclass(frozen=True)
class InboxSeen:
    snapshot: InboxSnapshot


@dataclass(frozen=True)
class DebugSeen:
    snapshot: DebugSnapshot


FeedItem = (
    ScanPage | ArtefactSeen | ClaimSeen | WorkflowSeen | AuditSeen | InstanceSeen | ConnectionSeen
    | InboxSeen | DebugSeen
)


# ---------------------------------------------------------------------------------------------------------
# JSON form (one object per recording line)


def _claim_state_json(c: ClaimState) -> dict[str, Any]:
    return {"claim": c.claim.to_event(), "bids": c.bids, "note": c.note, "created_ms": c.created_ms}


def _claim_state(obj: dict[str, Any]) -> ClaimState:
    return ClaimState(Claim.from_event(obj["claim"]), dict(obj.get("bids") or {}), str(obj.get("note", "")),
                      int(obj.get("created_ms") or 0))


def _audit_json(r: AuditRecord) -> dict[str, Any]:
    return r.model_dump()


def item_to_json(item: FeedItem) -> dict[str, Any]:
    match item:
        case ScanPage():
            return {
                "kind": "scan",
                "artefacts": [a.to_event() for a in item.artefacts],
                "claims": [_claim_state_json(c) for c in item.claims],
                "audit": [_audit_json(r) for r in item.audit],
                "first": item.first,
                "last": item.last,
                "resync": item.resync,
                "total_hint": item.total_hint,
            }
        case ArtefactSeen():
            return {"kind": "artefact", "artefact": item.artefact.to_event()}
        case ClaimSeen():
            return {"kind": "claim", "state": _claim_state_json(item.state)}
        case WorkflowSeen():
            return {"kind": "workflow", "event": {"event": item.event.event, "data": item.event.data},
                    "ts_ms": item.ts_ms}
        case AuditSeen():
            return {"kind": "audit", "record": _audit_json(item.record)}
        case InstanceSeen():
            info = item.info
            return {"kind": "instance", "name": info.name, "status": info.status, "workspace": info.workspace,
                    "orchestrator_alive": info.orchestrator_alive,
                    "orchestrator_seen_ms": info.orchestrator_seen_ms, "roles": list(info.roles)}
        case ConnectionSeen():
            return {"kind": "connection", "state": item.state, "detail": item.detail}
        case InboxSeen():
            return {"kind": "inbox", "snapshot": item.snapshot.to_json()}
        case DebugSeen():
            return {"kind": "debug", "snapshot": item.snapshot.to_json()}
    raise TypeError(f"not a feed item: {item!r}")


def item_from_json(obj: dict[str, Any]) -> FeedItem:
    kind = obj.get("kind")
    match kind:
        case "scan":
            return ScanPage(
                artefacts=[ArtefactRecord.from_event(a) for a in obj.get("artefacts", [])],
                claims=[_claim_state(c) for c in obj.get("claims", [])],
                audit=[AuditRecord.model_validate(r) for r in obj.get("audit", [])],
                first=bool(obj.get("first")),
                last=bool(obj.get("last")),
                resync=bool(obj.get("resync")),
                total_hint=int(obj.get("total_hint", 0)),
            )
        case "artefact":
            return ArtefactSeen(ArtefactRecord.from_event(obj["artefact"]))
        case "claim":
            return ClaimSeen(_claim_state(obj["state"]))
        case "workflow":
            return WorkflowSeen(WorkflowEvent.model_validate(obj["event"]), int(obj.get("ts_ms", 0)))
        case "audit":
            return AuditSeen(AuditRecord.model_validate(obj["record"]))
        case "instance":
            return InstanceSeen(InstanceInfo(
                name=str(obj["name"]), status=str(obj.get("status", "unknown")),
                workspace=str(obj.get("workspace", "")), orchestrator_alive=bool(obj.get("orchestrator_alive")),
                orchestrator_seen_ms=int(obj.get("orchestrator_seen_ms", 0)),
                roles=tuple(str(r) for r in obj.get("roles", [])),
            ))
        case "connection":
            return ConnectionSeen(str(obj["state"]), str(obj.get("detail", "")))
        case "inbox":
            return InboxSeen(InboxSnapshot.from_json(obj["snapshot"]))
        case "debug":
            return DebugSeen(DebugSnapshot.from_json(obj["snapshot"]))
    raise ValueError(f"unknown feed item kind {kind!r}")


def dumps_line(t_s: float, item: FeedItem) -> str:
    body = item_to_json(item)
    body["t"] = round(t_s, 3)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))
