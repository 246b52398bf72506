"""The rules as a table: a claim's facts in, the next decision out. No Redis, no event loop."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from holt_core.decisions import DecisionKind
from holt_core.engine.rules import ClaimFacts, Ending, RulesConfig, decide
from holt_core.models import Artefact, Claim, ClaimStatus, Phase, PhaseState, StructuralType, new_id

T0 = 1_700_000_000_000
AGENTS = ("Drafter", "Reviewer", "Nutritionist", "Formatter")
CFG = RulesConfig(agents=AGENTS, bid_timeout_s=10.0, max_review_iterations=3)


def art(role: str = "Drafter", payload: str = "text", *, version: int = 1,
        st: StructuralType = StructuralType.STANDARD) -> Artefact:
    return Artefact(id=new_id(), logical_id=new_id(), version=version, structural_type=st, type="Draft",
                    payload=payload, produced_by_role=role)


TARGET = art()


def claim(status: ClaimStatus = ClaimStatus.PENDING_REVIEW, phase: Phase | None = None,
          granted: list[str] | None = None, bids: dict[str, str] | None = None, **extra: Any) -> Claim:
    ps = None if phase is None else PhaseState(current=phase, granted_agents=granted or [], all_bids=bids or {})
    return Claim(id=new_id(), artefact_id=TARGET.id, status=status, phase_state=ps, **extra)


def facts(c: Claim, target: Artefact = TARGET, **kw: Any) -> ClaimFacts:
    return ClaimFacts(claim=c, target=target, created_ms=T0, **kw)


ALL_BIDS = {"Drafter": "ignore", "Reviewer": "review", "Nutritionist": "claim", "Formatter": "exclusive"}


# ------------------------------------------------------------------------------------------- consensus

@pytest.mark.parametrize(("bids", "now", "kind", "granted", "timed_out"), [
    # every agent bid: the first phase anyone wants, at once
    (ALL_BIDS, T0, DecisionKind.GRANT_REVIEW, ("Reviewer",), ()),
    ({**ALL_BIDS, "Reviewer": "ignore"}, T0, DecisionKind.GRANT_PARALLEL, ("Nutritionist",), ()),
    ({a: "ignore" for a in AGENTS} | {"Formatter": "exclusive", "Drafter": "exclusive"}, T0,
     DecisionKind.GRANT_EXCLUSIVE, ("Drafter",), ()),  # exclusive: the first bidder by name
    ({a: "claim" for a in AGENTS}, T0, DecisionKind.GRANT_PARALLEL, tuple(sorted(AGENTS)), ()),
    # a bid missing before the deadline: wait
    ({"Reviewer": "review"}, T0 + 9_999, None, (), ()),
    # ... after it: counted as ignore
    ({"Reviewer": "review"}, T0 + 10_000, DecisionKind.GRANT_REVIEW, ("Reviewer",),
     ("Drafter", "Nutritionist", "Formatter")),
    # nobody wants any phase: dormant
    ({a: "ignore" for a in AGENTS}, T0, DecisionKind.DORMANT, (), ()),
    ({}, T0 + 10_000, DecisionKind.DORMANT, (), AGENTS),
    # an unreadable bid counts as ignore, and is reported
    ({**ALL_BIDS, "Reviewer": "maybe"}, T0, DecisionKind.GRANT_PARALLEL, ("Nutritionist",), ()),
])
def test_consensus(bids: dict[str, str], now: int, kind: DecisionKind | None, granted: tuple[str, ...],
                   timed_out: tuple[str, ...]) -> None:
    v = decide(facts(claim(), bids=bids), CFG, now)
    if kind is None:
        assert v is None
        return
    assert v is not None and v.kind == kind
    assert v.granted == granted and v.decision.granted_roles == granted
    assert v.timed_out == timed_out
    if bids.get("Reviewer") == "maybe":
        assert v.invalid_bids == {"Reviewer": "maybe"}


def test_no_agents_configured_means_no_decision() -> None:
    assert decide(facts(claim()), replace(CFG, agents=()), T0 + 60_000) is None


def test_dormant_claim_stays_dormant() -> None:
    assert decide(facts(claim(), bids=ALL_BIDS, note="dormant: no_bids_in_any_phase"), CFG, T0) is None


def test_exclusive_winner_run_as_worker_queues_when_slots_are_busy() -> None:
    cfg = replace(CFG, worker_roles=frozenset({"Formatter"}), worker_limits={"Formatter": 2})
    bids = {a: "ignore" for a in AGENTS} | {"Formatter": "exclusive"}
    free = decide(facts(claim(), bids=bids, busy_workers={"Formatter": 1}), cfg, T0)
    full = decide(facts(claim(), bids=bids, busy_workers={"Formatter": 2}), cfg, T0)
    assert free is not None and free.kind == DecisionKind.GRANT_EXCLUSIVE
    assert full is not None and full.kind == DecisionKind.QUEUE_GRANT and full.granted == ("Formatter",)


# ------------------------------------------------------------------------------------------- phase order

@pytest.mark.parametrize(("current", "all_bids", "kind", "granted", "approvals"), [
    (Phase.REVIEW, ALL_BIDS, DecisionKind.GRANT_PARALLEL, ("Nutritionist",), ("Reviewer",)),
    (Phase.REVIEW, {**ALL_BIDS, "Nutritionist": "ignore"}, DecisionKind.GRANT_EXCLUSIVE, ("Formatter",),
     ("Reviewer",)),
    (Phase.REVIEW, {"Reviewer": "review"}, DecisionKind.DORMANT, (), ("Reviewer",)),
    (Phase.PARALLEL, ALL_BIDS, DecisionKind.GRANT_EXCLUSIVE, ("Formatter",), ()),
    (Phase.PARALLEL, {"Nutritionist": "claim"}, DecisionKind.DORMANT, (), ()),
])
def test_next_phase_after_every_output(current: Phase, all_bids: dict[str, str], kind: DecisionKind,
                                       granted: tuple[str, ...], approvals: tuple[str, ...]) -> None:
    role = next(r for r, b in all_bids.items() if b == {"review": "review", "parallel": "claim"}[current.value])
    c = claim(ClaimStatus.PENDING_REVIEW if current == Phase.REVIEW else ClaimStatus.PENDING_PARALLEL,
              current, [role], all_bids)
    output = art(role, "{}", st=StructuralType.REVIEW if current == Phase.REVIEW else StructuralType.STANDARD)
    assert decide(facts(c), CFG, T0) is None  # the granted agent has not answered yet
    v = decide(facts(c, outputs={role: output}), CFG, T0)
    assert v is not None and v.kind == kind and v.granted == granted and v.approvals == approvals
    if kind == DecisionKind.DORMANT:
        assert v.reason == f"no_grants_remaining_after_{current.value}"


def test_exclusive_output_completes() -> None:
    c = claim(ClaimStatus.PENDING_EXCLUSIVE, Phase.EXCLUSIVE, ["Formatter"], ALL_BIDS)
    assert decide(facts(c), CFG, T0) is None
    v = decide(facts(c, outputs={"Formatter": art("Formatter")}), CFG, T0)
    assert v is not None and v.kind == DecisionKind.COMPLETE


def test_a_granted_agents_failure_terminates() -> None:
    c = claim(ClaimStatus.PENDING_PARALLEL, Phase.PARALLEL, ["Nutritionist"], ALL_BIDS)
    failure = art("Nutritionist", "boom", st=StructuralType.FAILURE)
    v = decide(facts(c, failures={"Nutritionist": failure}), CFG, T0)
    assert v is not None and v.kind == DecisionKind.TERMINATE
    assert v.reason == f"Agent 'Nutritionist' failed: Draft {failure.id}"


def test_a_claim_in_a_grant_queue_waits() -> None:
    from holt_core.models import GrantQueue

    c = claim(ClaimStatus.PENDING_EXCLUSIVE, Phase.EXCLUSIVE, ["Formatter"], ALL_BIDS,
              grant_queue=GrantQueue(paused_at_ms=T0, agent_name="Formatter", position=0))
    assert decide(facts(c), CFG, T0) is None


def test_closed_claims_have_no_next_decision() -> None:
    for status in (ClaimStatus.COMPLETE, ClaimStatus.TERMINATED):
        assert decide(facts(claim(status), bids=ALL_BIDS), CFG, T0) is None


# ------------------------------------------------------------------------------------------- feedback

def review_phase(version: int = 1, producer: str = "Drafter") -> tuple[Claim, Artefact]:
    target = art(producer, version=version)
    c = Claim(id=new_id(), artefact_id=target.id, status=ClaimStatus.PENDING_REVIEW,
              phase_state=PhaseState(current=Phase.REVIEW, granted_agents=["Reviewer", "Nutritionist"],
                                     all_bids={"Reviewer": "review", "Nutritionist": "review"}))
    return c, target


def test_rejected_review_sends_feedback_to_the_producer() -> None:
    c, target = review_phase()
    rejecting = art("Reviewer", '{"feedback": "more flour"}', st=StructuralType.REVIEW)
    approving = art("Nutritionist", "[]", st=StructuralType.REVIEW)
    v = decide(facts(c, target, outputs={"Reviewer": rejecting, "Nutritionist": approving}), CFG, T0)
    assert v is not None and v.kind == DecisionKind.START_FEEDBACK and v.ending == Ending.FEEDBACK
    assert v.granted == () and v.decision.granted_roles == ("Drafter",)
    assert v.reviews == (rejecting,) and v.approvals == ("Nutritionist",)
    assert v.reason == f"Terminated due to negative review feedback. See artefacts: [{rejecting.id}]"


@pytest.mark.parametrize(("version", "limit", "ending"), [
    (3, 3, Ending.FEEDBACK),  # iteration 2 of 3
    (4, 3, Ending.MAX_ITERATIONS),  # iteration 3 reached
    (9, 0, Ending.FEEDBACK),  # 0: no limit
])
def test_feedback_limit(version: int, limit: int, ending: Ending) -> None:
    c, target = review_phase(version)
    outputs = {"Reviewer": art("Reviewer", "no", st=StructuralType.REVIEW),
               "Nutritionist": art("Nutritionist", "{}", st=StructuralType.REVIEW)}
    v = decide(facts(c, target, outputs=outputs), replace(CFG, max_review_iterations=limit), T0)
    assert v is not None and v.ending == ending
    if ending == Ending.MAX_ITERATIONS:
        assert v.failure_kind == "MaxIterationsExceeded"
        assert v.reason == f"Terminated after reaching max review iterations ({limit})."


def test_feedback_for_a_producer_no_longer_configured_is_a_failure() -> None:
    c, target = review_phase(producer="Ghostwriter")
    outputs = {"Reviewer": art("Reviewer", "no", st=StructuralType.REVIEW),
               "Nutritionist": art("Nutritionist", "{}", st=StructuralType.REVIEW)}
    v = decide(facts(c, target, outputs=outputs), CFG, T0)
    assert v is not None and v.ending == Ending.MISSING_AGENT
    assert v.failure_kind == "MissingAgentConfiguration"
    assert v.reason == "Terminated due to missing agent configuration (role: Ghostwriter)."


def test_feedback_claim_completes_on_rework_and_terminates_on_failure() -> None:
    c = claim(ClaimStatus.PENDING_ASSIGNMENT, granted_exclusive_agent="Drafter")
    assert decide(facts(c), CFG, T0) is None
    done = decide(facts(c, rework=art("Drafter", version=2)), CFG, T0)
    assert done is not None and done.kind == DecisionKind.COMPLETE
    failure = art("Drafter", "x", st=StructuralType.FAILURE)
    failed = decide(facts(c, failures={"Drafter": failure}), CFG, T0)
    assert failed is not None and failed.kind == DecisionKind.TERMINATE
