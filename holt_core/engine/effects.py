"""Effects: carry out one decision of the rules, as one guarded write (``holt_core.claims``).

Each ``apply`` returns True when the write went through (the in-memory claim is then the written one), False
when the claim changed under it (the engine reloads it and asks the rules again). Holds of a closing claim
are released in the same write, audited (``holt_core.claims.hold_release``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from holt_core import claims
from holt_core.blackboard import Blackboard
from holt_core.claims import ClaimRuntime
from holt_core.debug.held import HeldDecision
from holt_core.engine.grants import Grants
from holt_core.engine.rules import GRANT_TYPE, Ending, Verdict, go_slice
from holt_core.identity import SYSTEM_ORCHESTRATOR
from holt_core.logs import EventLogger
from holt_core.models import (
    Artefact,
    Claim,
    ClaimStatus,
    GrantQueue,
    Phase,
    PhaseState,
    StructuralType,
    WorkflowEvent,
    WorkflowEventType,
    feedback_excerpt,
    new_id,
    now_ms,
)
from holt_core.transaction import Tx

_PHASE_STATUS = {
    Phase.REVIEW: ClaimStatus.PENDING_REVIEW,
    Phase.PARALLEL: ClaimStatus.PENDING_PARALLEL,
    Phase.EXCLUSIVE: ClaimStatus.PENDING_EXCLUSIVE,
}


class Holds(Protocol):
    """The debugging plane's holds, as the engine sees them (``holt_core.debug.gate.DebugGate``)."""

    def holds_of(self, claim_id: str) -> list[HeldDecision]: ...

    def has_marks(self, claim_id: str) -> bool: ...

    async def holds_released(self) -> None: ...


class NoHolds:
    def holds_of(self, claim_id: str) -> list[HeldDecision]:
        return []

    def has_marks(self, claim_id: str) -> bool:
        return False

    async def holds_released(self) -> None:
        return None


class Effects:
    def __init__(self, bb: Blackboard, grants: Grants, log: EventLogger, holds: Holds,
                 untrack: Callable[[str], None], track: Callable[[ClaimRuntime], None],
                 slot_freed: Callable[[str], None]) -> None:
        self.bb = bb
        self.keys = bb.keys
        self.grants = grants
        self.log = log
        self.holds = holds
        self._untrack = untrack
        self._track = track
        self._slot_freed = slot_freed

    # ------------------------------------------------------------------ endings

    async def close(self, rt: ClaimRuntime, status: ClaimStatus, reason: str, event: str,
                    extra: Tx | None = None, *, why: str = "") -> bool:
        """Complete or terminate the claim; its holds go in the same write (audited)."""
        new = claims.closed(rt.claim, status, reason)
        tx = claims.close_tx(self.keys, rt.claim.id, rt.rev, new, note=rt.note)
        if extra is not None:
            tx.extend(extra)
        if not await self._commit_closing(tx, rt.claim.id, why or f"claim {status.value}: {reason}"):
            return False
        rt.commit(new, rt.note)
        self.log.info(event, claim_id=rt.claim.id, status=status.value, reason=reason)
        self._closed(rt, new)
        return True

    async def dormant(self, rt: ClaimRuntime, v: Verdict, extra: Tx | None = None) -> bool:
        note = f"dormant: {v.reason}"
        if v.timed_out:
            note += f"; no bid from {', '.join(v.timed_out)} within the bid timeout"
        # Holt leaves a dormant claim in its status with no phase state.
        new = rt.claim.model_copy(update={"phase_state": None, "artefact_expected": False})
        tx = claims.close_tx(self.keys, rt.claim.id, rt.rev, new, note=note, event=claims.EVENT_DORMANT)
        if extra is not None:
            tx.extend(extra)
        if not await self._commit_closing(tx, rt.claim.id, f"claim dormant: {v.reason}"):
            return False
        rt.commit(new, note)
        self.log.info("claim_dormant", claim_id=rt.claim.id, reason=v.reason)
        self._untrack(rt.claim.id)
        return True

    async def _commit_closing(self, tx: Tx, claim_id: str, why: str) -> bool:
        holds = self.holds.holds_of(claim_id)
        if not holds and not self.holds.has_marks(claim_id):
            return (await self.bb.run(tx)).ok
        details = claims.hold_release(tx, self.keys, claim_id, holds, why=why)
        if not holds:  # only its stepping / skipped marks: nothing held to account for
            ok = (await self.bb.run(tx)).ok
            if ok:
                await self.holds.holds_released()
            return ok
        result, _ = await self.bb.audit.commit(tx, operator=SYSTEM_ORCHESTRATOR, action="debug_holds_released",
                                               subject=claim_id, details=details)
        if result.ok:
            await self.holds.holds_released()
        return result.ok

    def _closed(self, rt: ClaimRuntime, new: Claim) -> None:
        self._untrack(rt.claim.id)
        role = new.granted_exclusive_agent
        if self.grants.holds_slot(role):  # a controller's slot may have freed up
            self.grants.active[role].discard(rt.claim.id)
            self._slot_freed(role)

    # ------------------------------------------------------------------ grants

    async def grant(self, rt: ClaimRuntime, phase: Phase, granted: list[str], all_bids: dict[str, str],
                    timed_out: list[str], extra: Tx | None = None) -> bool:
        claim = rt.claim
        update: dict[str, Any] = {
            "status": _PHASE_STATUS[phase],
            "phase_state": PhaseState(current=phase, granted_agents=granted, received={}, all_bids=all_bids,
                                      start_time_ms=now_ms()),
            "artefact_expected": True,
            "grant_queue": None,
        }
        if phase == Phase.REVIEW:
            update["granted_review_agents"] = granted
        elif phase == Phase.PARALLEL:
            update["granted_parallel_agents"] = granted
        else:
            update["granted_exclusive_agent"] = granted[0]
        new = claim.model_copy(update=update)
        note = f"no bid from {', '.join(timed_out)} within the bid timeout" if timed_out else rt.note
        tx = claims.write_tx(self.keys, claim.id, rt.rev, new, note=note)
        if extra is not None:
            tx.extend(extra)
        grant_type = GRANT_TYPE[phase]
        launch: list[str] = []
        for agent_name in granted:
            if self.grants.announce(tx, claim.id, claim.artefact_id, agent_name, grant_type, status=new.status):
                launch.append(agent_name)
            event = WorkflowEvent(event=WorkflowEventType.CLAIM_GRANTED, data={
                "claim_id": claim.id, "agent_name": agent_name, "grant_type": grant_type, "agent_image_id": "",
            })
            tx.publish(self.keys.workflow_events, event.to_json())
        # Worker slots are taken before the write: grants of other claims plan and write concurrently, so a
        # count checked at planning time alone would let them all through (more workers than max_concurrent).
        # Full by now: False, and the caller re-plans, which queues the grant.
        taken = self.grants.reserve(claim.id, launch)
        if taken is None:
            return False
        try:
            ok = (await self.bb.run(tx)).ok
        except BaseException:
            self.grants.release(claim.id, taken)
            raise
        if not ok:
            self.grants.release(claim.id, taken)
            return False
        rt.commit(new, note)
        rt.outputs.clear()
        rt.failures.clear()
        self.log.info(f"{phase.value}_phase_granted", claim_id=claim.id, agents=granted, bids=all_bids)
        for role in launch:
            self.grants.launch(role, claim.id)
        return True

    async def queue(self, rt: ClaimRuntime, role: str, all_bids: dict[str, str], extra: Tx | None) -> bool:
        claim = rt.claim
        paused = now_ms()
        new = claim.model_copy(update={
            "status": ClaimStatus.PENDING_EXCLUSIVE,
            "grant_queue": GrantQueue(paused_at_ms=paused, agent_name=role, position=0),
            "phase_state": PhaseState(current=Phase.EXCLUSIVE, granted_agents=[role], all_bids=all_bids,
                                      start_time_ms=paused),
        })
        note = f"waiting in {role}'s grant queue"
        tx = claims.write_tx(self.keys, claim.id, rt.rev, new, note=note)
        if extra is not None:
            tx.extend(extra)
        tx.zadd(self.keys.grant_queue(role), paused, claim.id)
        if not (await self.bb.run(tx)).ok:
            return False
        rt.commit(new, note)
        self.log.info("grant_paused_for_queue", claim_id=claim.id, agent_name=role)
        return True

    # ------------------------------------------------------------------ feedback

    def approvals_tx(self, target: Artefact, reviewers: tuple[str, ...] | list[str]) -> Tx:
        tx = Tx()
        for role in reviewers:
            tx.publish(self.keys.workflow_events, WorkflowEvent(event=WorkflowEventType.REVIEW_APPROVED, data={
                "original_artefact_id": target.id, "reviewer_role": role}).to_json())
        return tx

    def rejected(self, tx: Tx, target: Artefact, review: Artefact) -> None:
        tx.publish(self.keys.workflow_events, WorkflowEvent(event=WorkflowEventType.REVIEW_REJECTED, data={
            "original_artefact_id": target.id, "reviewer_role": review.produced_by_role,
            "feedback": feedback_excerpt(review.payload)}).to_json())

    async def feedback(self, rt: ClaimRuntime, v: Verdict) -> bool:
        target = rt.target
        tx = self.approvals_tx(target, v.approvals)
        for review in v.reviews:
            self.rejected(tx, target, review)
        if v.ending != Ending.FEEDBACK:
            failure = system_failure(v.failure_kind, target, v.failure_message)
            tx.extend(self.bb.artefact_tx(failure)[1])
            return await self.close(rt, ClaimStatus.TERMINATED, v.reason, "claim_terminated", extra=tx)
        producer = target.produced_by_role
        fb = self.feedback_claim(target, producer, [a.id for a in v.reviews], rt.claim.id, new_id(), tx)
        ok = await self.close(rt, ClaimStatus.TERMINATED, v.reason, "claim_terminated_review_feedback", extra=tx,
                              why="superseded by review feedback")
        if ok:
            self.feedback_started(fb, target, producer, rt.claim.id)
        return ok

    def feedback_claim(self, target: Artefact, producer: str, review_ids: list[str], original_claim_id: str,
                       claim_id: str, tx: Tx) -> Claim:
        """Adds to ``tx`` the creation of a feedback claim granting the target's producer its rework. As in
        Holt, its creation on ``claim_events`` is its only announcement (no grant notification)."""
        fb = Claim(id=claim_id, artefact_id=target.id, status=ClaimStatus.PENDING_ASSIGNMENT,
                   granted_exclusive_agent=producer, additional_context_ids=review_ids, artefact_expected=True)
        tx.extend(claims.create_tx(self.keys, fb, now_ms()))
        tx.publish(self.keys.workflow_events, WorkflowEvent(
            event=WorkflowEventType.FEEDBACK_CLAIM_CREATED,
            data={"feedback_claim_id": fb.id, "original_claim_id": original_claim_id,
                  "target_agent_role": producer, "iteration": target.version}).to_json())
        self.grants.announce(tx, fb.id, fb.artefact_id, producer, "exclusive", status=fb.status)
        return fb

    def feedback_started(self, fb: Claim, target: Artefact, producer: str, original_claim_id: str) -> None:
        self._track(ClaimRuntime(claim=fb, target=target, rev=1, created_ms=now_ms()))
        self.log.info("feedback_claim_created", feedback_claim_id=fb.id, original_claim_id=original_claim_id,
                      target_agent_role=producer, iteration=target.version)
        if self.grants.runs_as_worker(producer):
            self.grants.launch(producer, fb.id)

    def human_review_reason(self, review: Artefact) -> str:
        return f"Terminated due to negative review feedback. See artefacts: {go_slice([review.id])}"


def system_failure(kind: str, target: Artefact, payload: str) -> Artefact:
    ident = new_id()
    return Artefact(id=ident, logical_id=new_id(), version=1, structural_type=StructuralType.FAILURE, type=kind,
                    payload=payload, source_artefacts=[target.id], produced_by_role="orchestrator")
