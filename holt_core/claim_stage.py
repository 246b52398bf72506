"""One reading of where a claim stands, shared by ``holt explain`` and holt-tui (pure: no Redis, no Textual).

A claim's stored ``status`` alone misleads: a dormant claim keeps its pending status (the orchestrator only
notes ``dormant: ...`` and takes it off the open set), a claim whose agent asked a question looks as if its
agent had delivered, and an artefact can carry two claims (the original and a feedback claim). Everything
that shows a claim's state (explain's verdict, the TUI's badges, header counts and inspector) derives it here,
from the same facts, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from holt_core.models import ClaimStatus, StructuralType

DORMANT_NOTE = "dormant"
OUTPUT_CLOCK_MARGIN_MS = 10_000  # outputs this much older than the phase start still count (clock skew)


class Stage(StrEnum):
    DONE = "done"  # complete
    TERMINATED = "terminated"
    DORMANT = "dormant"  # open in status, but no agent wants its next phase: it stays as it is
    HELD = "held"  # a decision of it is held by the debugger
    WAITING = "waiting"  # for a person: an open question or approval
    REWORK = "rework"  # a feedback claim: its producer writes the next version
    QUEUED = "queued"  # in a controller's grant queue
    WORKING = "working"  # granted: output from a granted agent has not arrived
    BIDDING = "bidding"  # waiting for bids
    ADVANCING = "advancing"  # nothing it waits for: the orchestrator moves it on
    UNCLAIMED = "unclaimed"  # an artefact without a claim (yet, or never: Terminal, Review, Failure)

    @property
    def closed(self) -> bool:
        return self in (Stage.DONE, Stage.TERMINATED, Stage.DORMANT)

    @property
    def moving(self) -> bool:
        """False when the claim waits for something outside the orchestrator (a person, the debugger)."""
        return self not in (Stage.HELD, Stage.WAITING)


STAGE_TEXT = {
    Stage.DONE: "done (complete)",
    Stage.TERMINATED: "terminated",
    Stage.DORMANT: "dormant (no agent wants its next phase)",
    Stage.HELD: "held: a decision of it waits for step, continue or skip",
    Stage.WAITING: "waiting for a person (question or approval)",
    Stage.REWORK: "rework (its producer writes the next version)",
    Stage.QUEUED: "queued for a busy agent",
    Stage.WORKING: "working (a granted agent has not delivered)",
    Stage.BIDDING: "waiting for bids",
    Stage.ADVANCING: "advancing (the orchestrator moves it on)",
    Stage.UNCLAIMED: "no claim",
}


def is_dormant(status: ClaimStatus, note: str) -> bool:
    return status.is_open and note.startswith(DORMANT_NOTE)


def is_active(status: ClaimStatus, note: str) -> bool:
    """Open and not dormant: what "open claims" counts (the orchestrator's open set holds exactly these)."""
    return status.is_open and not is_dormant(status, note)


@dataclass(frozen=True)
class ClaimFacts:
    """What the stage is read from; every reader (explain from Redis, the TUI from its model) fills it alike."""

    status: ClaimStatus | None  # None: the artefact has no claim
    note: str = ""
    held: bool = False  # an unreleased held decision of this claim (or, with no claim, of its artefact)
    waiting_for_person: bool = False  # an open question or approval of this claim
    queued: bool = False
    in_phase: bool = False  # a review / parallel / exclusive phase is running
    granted: tuple[str, ...] = ()  # the phase's granted agents
    delivered: frozenset[str] = frozenset()  # granted agents whose output arrived (``delivered_roles``)
    all_bid: bool = False  # every known agent has bid (no phase yet)


def delivered_roles(granted: Iterable[str], outputs: Iterable[tuple[str, StructuralType, int]],
                    phase_start_ms: int) -> frozenset[str]:
    """Granted agents that delivered in this phase: ``outputs`` are (producing role, structural type, created ms)
    of the artefacts derived from the claim's target. A Question is not a delivery: its asker waits."""
    wanted = set(granted)
    since = phase_start_ms - OUTPUT_CLOCK_MARGIN_MS
    return frozenset(role for role, kind, created in outputs
                     if role in wanted and created >= since and kind is not StructuralType.QUESTION)


def claim_stage(f: ClaimFacts) -> Stage:
    if f.status is None:
        if f.held:
            return Stage.HELD
        return Stage.WAITING if f.waiting_for_person else Stage.UNCLAIMED
    if f.status == ClaimStatus.COMPLETE:
        return Stage.DONE
    if f.status == ClaimStatus.TERMINATED:
        return Stage.TERMINATED
    if is_dormant(f.status, f.note):
        return Stage.DORMANT
    if f.held:
        return Stage.HELD
    if f.waiting_for_person:
        return Stage.WAITING
    if f.status == ClaimStatus.PENDING_ASSIGNMENT:
        return Stage.REWORK
    if f.queued:
        return Stage.QUEUED
    if f.in_phase:
        return Stage.WORKING if set(f.granted) - f.delivered else Stage.ADVANCING
    return Stage.ADVANCING if f.all_bid else Stage.BIDDING


def newest_claim(claims: Iterable[tuple[int, str]]) -> str | None:
    """Of an artefact's claims as (created ms, claim id), the one that speaks for it (the newest, as the
    artefact -> claim index points to it: a feedback claim after the claim it superseded)."""
    best = max(claims, default=None)
    return best[1] if best is not None else None
