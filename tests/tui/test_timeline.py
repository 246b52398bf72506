"""Time travel as data: the timeline of changes and the blackboard as it was after change k (no Redis)."""

from __future__ import annotations

import dataclasses

import pytest

from holt_core.audit import AuditRecord
from holt_core.models import ClaimStatus
from holt_tui.feed import ClaimSeen
from holt_tui.model import LiveModel
from holt_tui.timeline import ClaimJournal, Timeline, build_timeline, parse_moment, seek
from tests.tui.fixtures import DRAFT2, FINAL, NOTES, T0, claims, live_workflow, uid, with_hitl_and_debug


def loaded(items: list, journal: ClaimJournal | None = None) -> tuple[LiveModel, Timeline]:  # type: ignore[type-arg]
    model = LiveModel("recipe")
    model.apply_all(items)
    return model, build_timeline(model, journal)


def index_of(tl: Timeline, text: str) -> int:
    """The change number (1-based) of the first moment whose text contains ``text``."""
    return next(i for i, m in enumerate(tl.moments, start=1) if text in m.text)


def test_moments_are_ordered_and_the_last_one_is_the_present() -> None:
    model, tl = loaded(with_hitl_and_debug())
    times = [m.ts_ms for m in tl.moments]
    assert times == sorted(times)
    now = tl.model_at(len(tl))
    assert set(now.artefacts) == set(model.artefacts)
    assert {c: s.claim.status for c, s in now.claims.items()} == {c: s.claim.status for c, s in model.claims.items()}
    assert [i.id for i in now.inbox.items] == [i.id for i in model.inbox.items]
    assert [h.id for h in now.debug.held] == [h.id for h in model.debug.held]
    assert now.rows() == model.rows()


def test_a_step_back_hides_what_came_later_and_shows_earlier_claim_states() -> None:
    _, tl = loaded(with_hitl_and_debug())
    k = index_of(tl, "NutritionNotes")
    before = tl.model_at(k - 1)
    assert NOTES.id not in before.artefacts and DRAFT2.id in before.artefacts
    assert tl.model_at(k).artefacts.keys() >= {NOTES.id}
    # The draft's claim: pending_review when it was created, in its exclusive phase after 45 s.
    claim = uid(104)
    created = index_of(tl, f"claim {claim[:8]} created")
    assert tl.model_at(created).claims[claim].claim.status is ClaimStatus.PENDING_REVIEW
    assert tl.model_at(created).claims[claim].bids == {}
    assert tl.model_at(created - 1).claims.get(claim) is None
    assert tl.model_at(index_of(tl, "exclusive phase")).claims[claim].claim.status is ClaimStatus.PENDING_EXCLUSIVE
    # A terminated claim was open until its closing.
    draft1 = uid(102)
    closed = index_of(tl, f"claim {draft1[:8]} terminated")
    assert tl.model_at(closed - 1).claims[draft1].claim.status is ClaimStatus.PENDING_REVIEW
    assert tl.model_at(closed).claims[draft1].claim.status is ClaimStatus.TERMINATED


def test_requests_and_holds_appear_at_their_time() -> None:
    _, tl = loaded(with_hitl_and_debug())
    question = index_of(tl, "question opened")
    assert tl.model_at(question - 1).inbox.items == ()
    assert [i.kind for i in tl.model_at(question).inbox.items] == ["question"]
    held = index_of(tl, "held: grant exclusive")
    assert tl.model_at(held - 1).debug.held == ()
    assert len(tl.model_at(held).debug.held) == 1


def test_requests_and_holds_of_the_past_are_rebuilt_from_the_audit_trail() -> None:
    def rec(seq: int, at: int, act: str, subject: str, **details: object) -> AuditRecord:
        return AuditRecord(seq=seq, ts_ms=T0 + at, operator="alice", action=act, subject=subject,
                           details=details, prev_hash="0" * 64)

    items = live_workflow()
    model = LiveModel("recipe")
    model.apply_all(items)
    for r in (rec(10, 70_000, "approval_requested", "req-1", action="publish", target="site", risk="high"),
              rec(11, 80_000, "approved", "req-1"),
              rec(12, 90_000, "debug_decision_held", "subj-1", hold_id="h1", claim_id=uid(104), kind="grant_review",
                  summary="grant review to Reviewer"),
              rec(13, 95_000, "step", "subj-1")):
        model.audit.append(r)
    tl = build_timeline(model)
    opened, decided = index_of(tl, "approval opened"), index_of(tl, "approval approved")
    assert [i.title for i in tl.model_at(opened).inbox.items] == ["publish site"]
    assert tl.model_at(decided).inbox.items == ()
    held, released = index_of(tl, "held: grant review"), index_of(tl, "step by alice")
    assert [h.id for h in tl.model_at(held).debug.held] == ["h1"]
    assert tl.model_at(released).debug.held == ()


def test_claim_states_seen_live_are_exact() -> None:
    journal = ClaimJournal()
    st = claims()[2]
    early = dataclasses.replace(st, claim=st.claim.model_copy(update={"status": ClaimStatus.PENDING_PARALLEL,
                                                                      "phase_state": None}))
    journal.note(T0 + 32_000, early)
    journal.note(T0 + 33_000, early)  # the same state re-read: one change, not two
    journal.note(T0 + 55_000, st)
    model = LiveModel("recipe")
    model.apply_all([*live_workflow(), ClaimSeen(early), ClaimSeen(st)])
    tl = build_timeline(model, journal)
    seen = [m for m in tl.moments if "seen live" in m.text]
    assert [m.ts_ms - T0 for m in seen] == [32_000, 55_000]
    k = tl.index_at(T0 + 40_000)
    assert tl.model_at(k).claims[st.claim.id].claim.status is ClaimStatus.PENDING_PARALLEL
    assert tl.model_at(len(tl)).claims[st.claim.id].claim.status is ClaimStatus.PENDING_EXCLUSIVE


def test_seek_by_index_or_time() -> None:
    _, tl = loaded(live_workflow())
    assert seek(tl, parse_moment("3")) == 3
    assert seek(tl, parse_moment("99999")) == len(tl)
    assert seek(tl, parse_moment("0")) == 1
    final = tl.moments[index_of(tl, "FormattedRecipe") - 1].ts_ms
    assert final == FINAL.created_at_ms
    k = seek(tl, parse_moment("2025-12-31T23:56:00Z"))  # T0 + 60 s: the Terminal's moment
    assert tl.moments[k - 1].ts_ms <= T0 + 60_000 < (tl.moments[k].ts_ms if k < len(tl) else T0 + 10**9)
    assert FINAL.id in tl.model_at(k).artefacts
    assert FINAL.id not in tl.model_at(tl.index_at(T0 + 59_999)).artefacts
    assert parse_moment("23:56") == ("clock", (23 * 60 + 56) * 60_000)
    assert seek(tl, parse_moment("23:56:00")) == k  # a time of day: on the last change's day
    with pytest.raises(ValueError, match="change number"):
        parse_moment("yesterday")


def summary(m: LiveModel) -> tuple[object, ...]:
    claims = sorted((c, s.claim.status, tuple(sorted(s.bids))) for c, s in m.claims.items())
    return (sorted(m.artefacts), m.rows(), claims,
            [i.id for i in m.inbox.items], [h.id for h in m.debug.held], [r.seq for r in m.audit],
            sorted(line.text for line in m.events), {c: sorted(v) for c, v in m.claims_by_artefact.items() if v},
            {k: v for k, v in m.children.items() if v})


def test_stepping_change_by_change_is_the_same_as_building_the_moment() -> None:
    _, tl = loaded(with_hitl_and_debug())
    n = len(tl)
    model = tl.model_at(n)
    for k in [*range(n - 1, 0, -1), *range(2, n + 1), 1, n, 3]:
        model = tl.move(model, k)
        assert model.index == k
        assert summary(model) == summary(tl.model_at(k)), k
