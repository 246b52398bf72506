"""The one derivation of where a claim stands (holt_core/claim_stage.py), shared by holt explain and holt-tui."""

from __future__ import annotations

from holt_core.claim_stage import ClaimFacts, Stage, claim_stage, delivered_roles, is_active
from holt_core.models import ClaimStatus, StructuralType


def test_dormant_is_not_open_and_wins_over_its_pending_status() -> None:
    assert claim_stage(ClaimFacts(ClaimStatus.PENDING_REVIEW, note="dormant: no bids")) is Stage.DORMANT
    assert not is_active(ClaimStatus.PENDING_REVIEW, "dormant: no bids")
    assert is_active(ClaimStatus.PENDING_REVIEW, "")
    assert not is_active(ClaimStatus.COMPLETE, "")


def test_a_question_is_not_a_delivery_and_a_person_waited_for_comes_first() -> None:
    delivered = delivered_roles(["Formatter"], [("Formatter", StructuralType.QUESTION, 2_000)], 1_000)
    assert delivered == frozenset()
    facts = ClaimFacts(ClaimStatus.PENDING_EXCLUSIVE, in_phase=True, granted=("Formatter",), delivered=delivered)
    assert claim_stage(facts) is Stage.WORKING
    waiting = ClaimFacts(ClaimStatus.PENDING_EXCLUSIVE, in_phase=True, granted=("Formatter",),
                         delivered=delivered, waiting_for_person=True)
    assert claim_stage(waiting) is Stage.WAITING
    done = delivered_roles(["Formatter"], [("Formatter", StructuralType.TERMINAL, 2_000)], 1_000)
    assert claim_stage(ClaimFacts(ClaimStatus.PENDING_EXCLUSIVE, in_phase=True, granted=("Formatter",),
                                  delivered=done)) is Stage.ADVANCING


def test_held_closed_and_unclaimed() -> None:
    assert claim_stage(ClaimFacts(None, held=True)) is Stage.HELD
    assert claim_stage(ClaimFacts(None)) is Stage.UNCLAIMED
    assert claim_stage(ClaimFacts(ClaimStatus.COMPLETE, held=True)) is Stage.DONE
    assert claim_stage(ClaimFacts(ClaimStatus.PENDING_REVIEW, held=True, waiting_for_person=True)) is Stage.HELD
    assert claim_stage(ClaimFacts(ClaimStatus.PENDING_ASSIGNMENT)) is Stage.REWORK
    assert claim_stage(ClaimFacts(ClaimStatus.PENDING_REVIEW)) is Stage.BIDDING
    assert Stage.DORMANT.closed and not Stage.HELD.moving
