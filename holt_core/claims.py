"""The claim record and its one writer: creation, compare-and-set changes, and closing.

Every change of a claim hash goes through here: the engine (grants, phases, endings), the HITL coordinator
(question routing) and the debugging control plane (terminate by an operator). A change is guarded on the
claim's revision ``holt_rev``; closing a claim releases every hold of it in the same atomic write, so a held
decision never outlives its claim (``hold_release``), and that release is audited.

Extra claim-hash fields (``holt_rev``, ``holt_created_at_ms``, ``holt_note``) are ours; Go readers ignore them.
This module imports nothing of the engine, so clients (CLI, holt-tui) can use it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from holt_core.debug.events import DebugEventType, announce
from holt_core.debug.held import HeldDecision, Redrive
from holt_core.keys import Keys
from holt_core.models import Artefact, Claim, ClaimStatus, WorkflowEvent, now_ms
from holt_core.transaction import Tx

F_REV = "holt_rev"
F_CREATED = "holt_created_at_ms"
F_NOTE = "holt_note"
EXTENSION_FIELDS = (F_REV, F_CREATED, F_NOTE)

# Our additions to Holt's workflow events: a claim stopped moving (Go's `holt watch` prints them as
# "Unknown event"; see docs/protocol-extensions.md).
EVENT_COMPLETE = "claim_completed"
EVENT_TERMINATED = "claim_terminated"
EVENT_DORMANT = "claim_dormant"


@dataclass
class ClaimRuntime:
    """What the engine knows about one open claim (all of it rebuildable from Redis)."""

    claim: Claim
    target: Artefact
    rev: int
    created_ms: int
    bids: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, Artefact] = field(default_factory=dict)  # role -> output in the current phase
    failures: dict[str, Artefact] = field(default_factory=dict)  # role -> Failure artefact
    rework: Artefact | None = None  # feedback claims: the new version
    note: str = ""
    # The safety sweep's memory of grants whose output has not come: (rev, pending grants) and since when.
    waiting_key: tuple[int, tuple[tuple[str, str], ...]] | None = None
    waiting_since: float = 0.0

    def commit(self, new: Claim, note: str) -> None:
        """The write of ``new`` succeeded: this is the claim now."""
        self.claim = new
        self.rev += 1
        self.note = note


def human_feedback_claim_id(review_id: str) -> str:
    """The feedback claim an injected review starts has an id derived from the review: replays create it once."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"holt:human-review:{review_id}"))


def create_tx(keys: Keys, claim: Claim, created_ms: int, *, first_for_artefact: bool = False) -> Tx:
    """A new claim at revision 1 (``first_for_artefact``: only if the artefact has no claim yet)."""
    key = keys.claim(claim.id)
    tx = Tx()
    if first_for_artefact:
        tx.require_value(keys.claim_by_artefact(claim.artefact_id), None)
    tx.require_absent(key).hset(key, claim.to_hash())
    tx.set(keys.claim_by_artefact(claim.artefact_id), claim.id)
    tx.zadd(keys.claim_index, now_ms(), claim.id)
    tx.publish(keys.claim_events, claim.to_json())
    tx.hset(key, {F_REV: "1", F_CREATED: str(created_ms)})
    tx.sadd(keys.open_claims, claim.id)
    return tx


def write_tx(keys: Keys, claim_id: str, rev: int, new: Claim, *, note: str) -> Tx:
    """Every claim change: compare-and-set on the revision, all fields rewritten."""
    key = keys.claim(claim_id)
    tx = Tx().require_field(key, F_REV, str(rev) if rev else None)
    tx.hset(key, new.to_hash())
    tx.hset(key, {F_REV: str(rev + 1), F_NOTE: note})
    return tx


def closing_event(claim: Claim, event: str, note: str = "") -> WorkflowEvent:
    """Our addition to Holt's events: a claim stopped moving."""
    return WorkflowEvent(event=event, data={
        "claim_id": claim.id, "artefact_id": claim.artefact_id, "status": claim.status.value,
        "reason": claim.termination_reason or note,
    })


def closed(claim: Claim, status: ClaimStatus, reason: str) -> Claim:
    return claim.model_copy(update={"status": status, "termination_reason": reason, "artefact_expected": False})


def close_tx(keys: Keys, claim_id: str, rev: int, new: Claim, *, note: str, event: str | None = None) -> Tx:
    """Close a claim (complete, terminated, or dormant with ``new`` as given): guarded write, off the open set,
    out of its grant queue, announced. The caller adds ``hold_release`` for the holds it knows of."""
    tx = write_tx(keys, claim_id, rev, new, note=note)
    tx.srem(keys.open_claims, claim_id)
    if new.grant_queue is not None and new.grant_queue.agent_name:
        tx.zrem(keys.grant_queue(new.grant_queue.agent_name), claim_id)
    if event is None:
        event = EVENT_COMPLETE if new.status == ClaimStatus.COMPLETE else EVENT_TERMINATED
    tx.publish(keys.workflow_events, closing_event(new, event, note if event == EVENT_DORMANT else "").to_json())
    return tx


# ---------------------------------------------------------------------------------------------- holds


def holds_of(held: Iterable[HeldDecision], claim_id: str) -> list[HeldDecision]:
    """The held decisions that belong to this claim and die with it (an injected review's held feedback does
    not: it re-opens the producer's work even after the claim closed)."""
    return [h for h in held if h.subject == claim_id
            or (h.decision.claim_id == claim_id and h.redrive != Redrive.ARTEFACT)]


def hold_release(tx: Tx, keys: Keys, claim_id: str, holds: list[HeldDecision], *, why: str) -> dict[str, Any]:
    """Adds to ``tx`` the release of every hold of this claim (and its stepping / skipped marks); returns the
    audit details. Unguarded deletes: whatever the hold's state, it goes with its claim."""
    subjects = sorted({claim_id} | {h.subject for h in holds})
    for subject in subjects:
        tx.delete(keys.debug_held(subject)).srem(keys.debug_held_index, subject)
    tx.srem(keys.debug_stepping, claim_id)
    tx.delete(keys.debug_skipped(claim_id)).srem(keys.debug_skipped_index, claim_id)
    for h in holds:
        announce(tx, keys, DebugEventType.HOLD_DROPPED, subject=h.subject, hold_id=h.hold_id,
                 claim_id=claim_id, reason=why)
    return {"claim_id": claim_id, "reason": why,
            "holds": [{"subject": h.subject, "hold_id": h.hold_id, "kind": h.decision.kind.value,
                       "summary": h.decision.summary} for h in holds]}
