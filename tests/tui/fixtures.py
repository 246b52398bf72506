"""Deterministic feed items for UI tests: a recipe workflow with fixed ids and times (frozen clock)."""

from __future__ import annotations

import json
from pathlib import Path

from holt_core.audit import GENESIS_HASH, AuditRecord
from holt_core.models import Artefact, Claim, ClaimStatus, Phase, PhaseState, StructuralType, WorkflowEvent
from holt_tui.config import FROZEN_NOW_MS
from holt_tui.feed import (
    ArtefactSeen,
    ClaimState,
    ConnectionSeen,
    DebugSeen,
    FeedItem,
    InboxSeen,
    InstanceInfo,
    InstanceSeen,
    ScanPage,
    WorkflowSeen,
    dumps_line,
)
from holt_tui.sources import Breakpoint, DebugSnapshot, HeldDecision, InboxItem, InboxSnapshot

T0 = FROZEN_NOW_MS - 300_000  # the workflow started five minutes before the frozen "now"
ROLES = ("Drafter", "Formatter", "Nutritionist", "Reviewer")


def uid(n: int) -> str:
    return f"{n:08x}-0000-4000-8000-{n:012x}"


def art(n: int, type_: str, role: str, payload: str, sources: list[int], *, logical: int | None = None,
        version: int = 1, kind: StructuralType = StructuralType.STANDARD, at: int = 0) -> Artefact:
    return Artefact(id=uid(n), logical_id=uid(logical or 1000 + n), version=version, structural_type=kind,
                    type=type_, payload=payload, source_artefacts=[uid(s) for s in sources],
                    produced_by_role=role, created_at_ms=T0 + at)


GOAL = art(1, "GoalDefined", "user", "Sourdough bread", [], at=0)
DRAFT1 = art(2, "RecipeDraft", "Drafter", json.dumps({"title": "Sourdough", "ingredients": ["flour", "water"],
                                                      "steps": ["mix", "bake"]}), [1], logical=2000, at=10_000)
REVIEW1 = art(3, "Review", "Reviewer", json.dumps({"issue": "quantities missing"}), [2],
              kind=StructuralType.REVIEW, at=20_000)
DRAFT2 = art(4, "RecipeDraft", "Drafter", json.dumps({"title": "Sourdough", "ingredients": ["500 g flour",
                                                      "350 g water", "10 g salt"], "steps": ["mix", "bake"]}),
             [2, 3], logical=2000, version=2, at=30_000)
REVIEW2 = art(5, "Review", "Reviewer", "{}", [4], kind=StructuralType.REVIEW, at=40_000)
NOTES = art(6, "NutritionNotes", "Nutritionist", "about 250 kcal per slice", [4], at=50_000)
FINAL = art(7, "FormattedRecipe", "Formatter", "# Sourdough\n500 g flour ...", [4],
            kind=StructuralType.TERMINAL, at=60_000)
WORKFLOW = [GOAL, DRAFT1, REVIEW1, DRAFT2, REVIEW2, NOTES, FINAL]


def claim(n: int, target: Artefact, status: ClaimStatus, **kw: object) -> ClaimState:
    bids = kw.pop("bids", {}) if "bids" in kw else {}
    c = Claim(id=uid(100 + n), artefact_id=target.id, status=status, **kw)  # type: ignore[arg-type]
    return ClaimState(c, dict(bids))  # type: ignore[arg-type]


def claims() -> list[ClaimState]:
    all_ignore = {r: "ignore" for r in ROLES}
    return [
        claim(1, GOAL, ClaimStatus.COMPLETE, granted_exclusive_agent="Drafter",
              bids={**all_ignore, "Drafter": "exclusive"}),
        claim(2, DRAFT1, ClaimStatus.TERMINATED, granted_review_agents=["Reviewer"],
              termination_reason=f"Terminated due to negative review feedback. See artefacts: [{REVIEW1.id}]",
              bids={**all_ignore, "Reviewer": "review"}),
        claim(4, DRAFT2, ClaimStatus.PENDING_EXCLUSIVE, granted_review_agents=["Reviewer"],
              granted_parallel_agents=["Nutritionist"],
              phase_state=PhaseState(current=Phase.EXCLUSIVE, granted_agents=["Formatter"], received={},
                                     all_bids={**all_ignore, "Reviewer": "review", "Nutritionist": "claim",
                                               "Formatter": "exclusive"}, start_time_ms=T0 + 45_000),
              bids={**all_ignore, "Reviewer": "review", "Nutritionist": "claim", "Formatter": "exclusive"}),
    ]


def audit() -> list[AuditRecord]:
    return [AuditRecord(seq=1, ts_ms=T0 + 5_000, operator="alice", action="instance.up", subject="recipe",
                        details={"workspace": "/srv/recipe"}, prev_hash=GENESIS_HASH, hash="a" * 64)]


def instance_info(status: str = "running", alive: bool = True) -> InstanceInfo:
    return InstanceInfo(name="recipe", status=status, workspace="/srv/recipe", orchestrator_alive=alive,
                        orchestrator_seen_ms=FROZEN_NOW_MS - 1000, roles=ROLES)


def live_workflow(*, upto: int = len(WORKFLOW)) -> list[FeedItem]:
    """A scan of the first ``upto - 1`` artefacts, then the rest arriving live with their events."""
    scanned = WORKFLOW[: max(upto - 1, 0)]
    items: list[FeedItem] = [
        ConnectionSeen("live"),
        InstanceSeen(instance_info()),
        ScanPage(scanned, [c for c in claims() if c.claim.artefact_id in {a.id for a in scanned}], audit(),
                 first=True, last=True, total_hint=len(scanned)),
    ]
    for a in WORKFLOW[len(scanned):upto]:
        items.append(ArtefactSeen(a))
        items.append(WorkflowSeen(WorkflowEvent(event="bid_submitted", data={
            "claim_id": uid(104), "agent_name": "Formatter", "bid_type": "exclusive"}), a.created_at_ms))
    return items


def empty_instance() -> list[FeedItem]:
    return [ConnectionSeen("live"), InstanceSeen(instance_info()), ScanPage([], [], first=True, last=True)]


def resynced() -> list[FeedItem]:
    items = live_workflow(upto=5)
    items.append(ScanPage(WORKFLOW[:6], claims(), [], first=True, last=True, resync=True, total_hint=6))
    return items


def with_hitl_and_debug() -> list[FeedItem]:
    """What a future hitl/debug source would report: one held decision, a breakpoint, a question, an approval."""
    items = live_workflow(upto=6)
    items.append(InboxSeen(InboxSnapshot(True, (
        InboxItem(id=uid(900), kind="question", title="Which flour: bread or all-purpose?",
                  body="The goal does not say which flour.\nBread flour gives a chewier crumb.",
                  requester="Drafter", claim_id=uid(104), artefact_id=DRAFT2.id, created_ms=T0 + 200_000),
        InboxItem(id=uid(901), kind="approval", title="publish FormattedRecipe to the website",
                  requester="Formatter", claim_id=uid(104), artefact_id=DRAFT2.id, created_ms=T0 + 250_000,
                  risk="high", needs_justification=True),
    ))))
    items.append(DebugSeen(DebugSnapshot(True, (
        HeldDecision(id=uid(800), claim_id=uid(104), artefact_id=DRAFT2.id, kind="grant_exclusive",
                     would="grant exclusive to Formatter", reason="breakpoint 1: type RecipeDraft",
                     bids={"Formatter": "exclusive"}, held_since_ms=T0 + 260_000),
    ), (Breakpoint(id="1", type_glob="RecipeDraft", action="hold", hits=2),
        Breakpoint(id="2", type_glob="Review*", conditions={"role": "Reviewer"}, enabled=False)),
        full_control=False, lease_holder="alice")))
    return items


def two_held() -> list[FeedItem]:
    """Two held decisions in two claims (the second under full control), for the Debug tab's list."""
    items = with_hitl_and_debug()
    first = HeldDecision(id="hold-1", claim_id=uid(104), artefact_id=DRAFT2.id, kind="grant_exclusive",
                         would="grant exclusive to Formatter", reason="breakpoint 1: type RecipeDraft",
                         bids={"Formatter": "exclusive", "Reviewer": "review"}, held_since_ms=T0 + 200_000,
                         role="Formatter")
    second = HeldDecision(id="hold-2", claim_id=uid(106), artefact_id=NOTES.id, kind="grant_review",
                          would="grant review to Reviewer", reason="the instance is under full control",
                          bids={"Reviewer": "review"}, held_since_ms=T0 + 280_000, role="Reviewer")
    snapshot = DebugSnapshot(True, (first, second), full_control=True, lease_holder="alice")
    return [*items, DebugSeen(snapshot)]


def write_recording(path: Path, items: list[FeedItem], instance: str = "recipe") -> Path:
    lines = [json.dumps({"kind": "header", "version": 1, "instance": instance, "started_ms": T0})]
    lines += [dumps_line(i * 0.01, item) for i, item in enumerate(items)]
    path.write_text("\n".join(lines) + "\n")
    return path
