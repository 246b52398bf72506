"""The UI-free core: model, filter syntax, layout and recordings (no Textual, no Redis needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from holt_core.errors import HoltError
from holt_tui.feed import ArtefactSeen, ScanPage, item_from_json, item_to_json
from holt_tui.filtering import ListFilter
from holt_tui.layout import layered_layout
from holt_tui.model import LiveModel
from holt_tui.recording import load_recording
from tests.tui.fixtures import (
    DRAFT1,
    DRAFT2,
    FINAL,
    GOAL,
    REVIEW1,
    T0,
    WORKFLOW,
    art,
    live_workflow,
    with_hitl_and_debug,
    write_recording,
)


def test_rows_group_workflows_threads_and_versions_in_any_arrival_order() -> None:
    forward, backward = LiveModel("x"), LiveModel("x")
    forward.apply_all(ArtefactSeen(a) for a in WORKFLOW)
    # The attach scan pages newest first: parents arrive after their children.
    for page in ([WORKFLOW[6]], [WORKFLOW[5], WORKFLOW[4]], [WORKFLOW[3]], WORKFLOW[:3]):
        backward.apply_all([ScanPage(list(reversed(page)), [])])
        backward.rows()  # the UI draws between pages: the incremental path must fold workflows together
    assert forward.rows() == backward.rows()
    rows = forward.rows()
    assert rows[0] == ("w", GOAL.id, 0)
    draft_rows = [r for r in rows if r[1] in (DRAFT1.id, DRAFT2.id)]
    assert draft_rows == [("a", DRAFT1.id, 1), ("a", DRAFT2.id, 2)]  # v2 sits under v1 of its thread
    assert rows[-1] == ("a", FINAL.id, 1)
    other = art(50, "GoalDefined", "user", "second goal", [], at=90_000)
    forward.apply(ArtefactSeen(other))
    assert forward.rows()[-2:] == [("w", other.id, 0), ("a", other.id, 1)]
    assert forward.workflow_count() == 2


def test_duplicate_and_rescanned_items_converge() -> None:
    m = LiveModel("x")
    m.apply_all(live_workflow())
    before = (m.rows(), dict(m.claims))
    m.apply_all(live_workflow())  # a rescan after a reconnect covers the same data again
    assert (m.rows(), dict(m.claims)) == before
    assert len(m.artefacts) == len(WORKFLOW)


def test_filter_syntax_is_shared_and_strict() -> None:
    m = LiveModel("x")
    m.apply_all(live_workflow())
    m.set_filter(ListFilter.parse("type:Recipe* agent:Drafter", T0))
    assert [r[1] for r in m.rows() if r[0] == "a"] == [DRAFT1.id, DRAFT2.id]
    m.set_filter(ListFilter.parse("kind:review !approve", T0))
    assert [r[1] for r in m.rows() if r[0] == "a"] == [REVIEW1.id]
    m.set_filter(ListFilter.parse(f"id:{DRAFT2.id[:8]}", T0))
    assert [r[1] for r in m.rows() if r[0] == "a"] == [DRAFT2.id]
    with pytest.raises(HoltError, match="not a valid pattern"):
        ListFilter.parse("type:[", T0)
    with pytest.raises(HoltError, match="needs a value"):
        ListFilter.parse("agent:", T0)


def test_neighbourhood_layout_draws_boxes_and_arrows() -> None:
    m = LiveModel("x")
    m.apply_all(live_workflow())
    nodes, edges = m.neighbourhood(DRAFT2.id)
    assert {GOAL.id, DRAFT1.id, REVIEW1.id, DRAFT2.id, FINAL.id} <= set(nodes)
    drawing = layered_layout(nodes, edges, {n: (m.artefacts[n].type, n[:8]) for n in nodes}, focus=DRAFT2.id)
    text = "\n".join(drawing.lines)
    assert text.count("┏") == 1 and "▼" in text
    assert drawing.boxes[GOAL.id][1] < drawing.boxes[DRAFT1.id][1] < drawing.boxes[DRAFT2.id][1]


def test_recording_round_trip(tmp_path: Path) -> None:
    items = with_hitl_and_debug()
    for item in items:
        assert item_from_json(item_to_json(item)) == item
    rec = load_recording(write_recording(tmp_path / "r.jsonl", items))
    assert rec.instance == "recipe" and [i for _, i in rec.items] == items
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "header", "version": 1}\n{"kind": "nonsense"}\n')
    with pytest.raises(HoltError, match=r"bad.jsonl:2"):
        load_recording(bad)


def test_incremental_rows_equal_a_full_rebuild() -> None:
    import random

    rng = random.Random(7)
    live = LiveModel("x")
    live.apply_all([ScanPage(WORKFLOW, [], first=True, last=True)])
    live.rows()
    made = list(WORKFLOW)
    for n in range(300):
        parent = rng.choice(made)
        if rng.random() < 0.3:  # a new version of the parent's thread
            versions = [a for a in made if a.logical_id == parent.logical_id]
            a = art(100 + n, parent.type, "Drafter", f"v{n}", [], version=max(v.version for v in versions) + 1,
                    at=100_000 + n).model_copy(update={"logical_id": parent.logical_id,
                                                       "source_artefacts": [versions[-1].id]})
        else:
            a = art(100 + n, f"Step{n % 4}", "Agent", str(n), [], at=100_000 + n).model_copy(
                update={"source_artefacts": [parent.id]})
        made.append(a)
        live.apply(ArtefactSeen(a))
        if n % 7 == 0:
            live.rows()
    fresh = LiveModel("x")
    fresh.apply_all([ScanPage(made, [], first=True, last=True)])
    assert live.rows() == fresh.rows()


def test_a_fresh_attach_rebuilds_events_bids_and_claim_timelines() -> None:
    """Only a scan (no live event): Events, Agents' bids and a claim's timeline come from the blackboard."""
    from tests.tui.fixtures import DRAFT2, WORKFLOW, audit, claims, uid

    model = LiveModel("recipe")
    model.apply_all([ScanPage(WORKFLOW, claims(), audit(), first=True, last=True, total_hint=len(WORKFLOW))])
    kinds = [line.kind for line in model.events]
    assert kinds.count("artefact") == len(WORKFLOW) and "audit:instance.up" in kinds and "claim_status" in kinds
    assert [line.ts_ms for line in model.events] == sorted(line.ts_ms for line in model.events)
    bids = {row.name: row.bids for row in model.agents()}
    assert bids == {"Drafter": 3, "Formatter": 3, "Nutritionist": 3, "Reviewer": 3}
    timeline = [what for _, what in model.claim_timeline(uid(104))]
    assert timeline[0] == f"created on RecipeDraft v{DRAFT2.version}"
    assert "bid Formatter: exclusive" in timeline and "exclusive phase: granted Formatter" in timeline
    assert "output NutritionNotes v1 by Nutritionist" in timeline
    closed = [what for _, what in model.claim_timeline(uid(102))]
    assert closed[-1].startswith("closed (terminated: Terminated due to negative review feedback")


def test_importing_holt_tui_loads_no_engine_module() -> None:
    import subprocess
    import sys

    code = ("import sys, holt_tui.app, holt_tui.main; "
            "print(' '.join(m for m in sys.modules if m.startswith(('holt_core.orchestrator', "
            "'holt_core.hitl.coordinator', 'holt_core.debug.gate', 'holt_core.agent'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == ""


def test_workflow_status_badges() -> None:
    from holt_tui.feed import DebugSeen, InboxSeen
    from holt_tui.sources import DebugSnapshot, HeldDecision, InboxItem, InboxSnapshot
    from tests.tui.fixtures import DRAFT2, WORKFLOW, claims

    model = LiveModel("recipe")
    model.apply_all([ScanPage(WORKFLOW[:5], claims(), [], first=True, last=True)])
    model.rows()
    root = WORKFLOW[0].id
    assert model.workflow_status(root) == "running"
    model.apply(InboxSeen(InboxSnapshot(True, (InboxItem(id="q", kind="question", title="flour?",
                                                         artefact_id=DRAFT2.id),))))
    assert model.workflow_status(root) == "waiting"
    model.apply(DebugSeen(DebugSnapshot(True, (HeldDecision(id="h", claim_id="c", artefact_id=DRAFT2.id),))))
    assert model.workflow_status(root) == "held"
    model.apply(DebugSeen(DebugSnapshot(True)))
    model.apply(InboxSeen(InboxSnapshot(True)))
    model.apply_all([ArtefactSeen(a) for a in WORKFLOW[5:]])
    model.rows()
    assert model.workflow_status(root) == "done"


@pytest.mark.parametrize("seed", [11, 3, 5, 8, 13, 21])
def test_rows_placed_as_the_attach_scan_reads_equal_a_full_rebuild(seed: int) -> None:
    """The scan reads the newest page first, then everything oldest first; with clocks that disagree a child can come
    before its parent, so workflows fold into older ones as parents arrive. The rows are what a fresh build of the
    same artefacts gives (a root cached before its workflow was folded away headed a duplicate workflow)."""
    import random

    rng = random.Random(seed)
    made = list(WORKFLOW)
    for n in range(400):
        parent = rng.choice(made[: max(len(made) // 2, 1)]) if rng.random() < 0.5 else rng.choice(made)
        if rng.random() < 0.2:  # a new version of the parent's thread
            versions = [a for a in made if a.logical_id == parent.logical_id]
            a = art(100 + n, parent.type, "Drafter", f"v{n}", [], version=max(v.version for v in versions) + 1,
                    at=100_000 + rng.randrange(5_000)).model_copy(
                update={"logical_id": parent.logical_id, "source_artefacts": [versions[-1].id]})
        else:
            a = art(100 + n, f"Step{n % 4}", "Agent", str(n), [], at=100_000 + rng.randrange(5_000)).model_copy(
                update={"source_artefacts": [parent.id]})
        made.append(a)
    by_time = sorted(made, key=lambda a: (a.created_at_ms, a.id))
    newest, rest = by_time[-60:], by_time[:-60]
    live = LiveModel("x")
    live.apply(ScanPage(newest, [], first=True))
    live.rows()
    for start in range(0, len(rest), 50):
        live.apply(ScanPage(rest[start:start + 50], [], last=start + 50 >= len(rest)))
        if start % 100 == 0:
            live.rows()
    fresh = LiveModel("x")
    fresh.apply_all([ScanPage(made, [], first=True, last=True)])
    assert live.rows() == fresh.rows()
