"""hoard/watch output and the terminal sanitiser (pure: fixed clock, UTC)."""

from __future__ import annotations

import json
from datetime import UTC, timedelta, timezone

import pytest

from holt_core.artefact_filter import ArtefactFilter
from holt_core.models import STORED, Artefact, Claim, ClaimStatus, StructuralType, WorkflowEvent
from holt_core.render import (
    ArtefactItem,
    ClaimItem,
    WorkflowItem,
    artefact_pretty_json,
    clock,
    dedupe_key,
    format_age,
    history_items,
    hoard_jsonl,
    hoard_table,
    is_approval,
    is_terminal,
    json_text,
    payload_preview,
    short_type,
    watch_lines,
)
from holt_core.sanitise import has_unsafe, sanitise_text

NOW = 1_761_742_800_000  # 2025-10-29T13:00:00Z
A1 = "a1a1a1a1-0000-4000-8000-000000000001"
A2 = "b2b2b2b2-0000-4000-8000-000000000002"
C1 = "c3c3c3c3-0000-4000-8000-000000000003"
C2 = "c4c4c4c4-0000-4000-8000-000000000004"
R1 = "d5d5d5d5-0000-4000-8000-000000000005"


def _as_stored(**fields: object) -> Artefact:
    """An artefact as read back from Redis, where anyone may have written a hostile type."""
    return Artefact.model_validate(fields, context=STORED)


def art(
    ident: str = A1,
    *,
    type_: str = "GoalDefined",
    st: StructuralType = StructuralType.STANDARD,
    by: str = "user",
    payload: str = "Write a poem",
    version: int = 1,
    created: int = NOW - 5_000,
    sources: list[str] | None = None,
) -> Artefact:
    return _as_stored(
        id=ident,
        logical_id=ident,
        version=version,
        structural_type=st,
        type=type_,
        payload=payload,
        source_artefacts=sources or [],
        produced_by_role=by,
        created_at_ms=created,
    )


# ---------------------------------------------------------------------------------------------
# sanitiser


def test_sanitise_replaces_every_control_character() -> None:
    hostile = "a\x1b[2J\x1b]0;pwned\x07b\rc\x00d\x7fe\x9bf\u202eg\nh\ti"
    shown = sanitise_text(hostile)
    assert shown == "a␛[2J␛]0;pwned␇b␍c␀d␡e\\u009bf\\u202eg␊h i"
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in shown)


def test_sanitise_keep_newlines_and_max_len() -> None:
    assert sanitise_text("a\r\nb\tc\x1b", keep_newlines=True) == "a\nb    c␛"
    assert sanitise_text("abcdef", max_len=4) == "abc…"
    assert sanitise_text("abcd", max_len=4) == "abcd"
    assert sanitise_text("abc", max_len=0) == ""
    assert sanitise_text("bad \ud800 surrogate") == "bad \ufffd surrogate"
    assert has_unsafe("x\x1b") and has_unsafe("\t") and not has_unsafe("plain ☺ text")


def test_json_text_escapes_what_json_leaves_raw() -> None:
    text = json_text({"p": "a\x1b\x07\x7f\x9b\u202e☺<"})
    assert text == '{"p":"a\\u001b\\u0007\\u007f\\u009b\\u202e☺<"}'
    assert json.loads(text) == {"p": "a\x1b\x07\x7f\x9b\u202e☺<"}
    assert json.loads(json_text({"s": "\ud800"})) == {"s": "\ud800"}


# ---------------------------------------------------------------------------------------------
# hoard


def test_hoard_table_exact() -> None:
    rows = [
        art(A1, payload="\n  Write a poem about the sea  \nsecond line", created=NOW - 5_000),
        art(
            A2,
            type_="ExtremelyLongArtefactTypeName",
            by="Poet",
            payload="x" * 41,
            version=3,
            created=NOW - 7_200_000,
        ),
        # produced_by_role is required on write; a reader may still meet an empty one
        art(C1, type_="ToolExecutionFailure", payload="   \n\t\n", created=0).model_copy(
            update={"produced_by_role": ""}
        ),
    ]
    assert hoard_table(rows, "demo", NOW) == (
        "Artefacts for instance 'demo':\n"
        "\n"
        "ID         VER   TYPE       BY                 AGE      PAYLOAD\n"
        "---------- ----- ---------- ------------------ -------- ----------------------------------------\n"
        "a1a1a1a1   -     Goal       user               5s ago   Write a poem about the sea\n"
        f"b2b2b2b2   v3    ExtremelyLongArte... Poet               2h ago   {'x' * 37}...\n"
        "c3c3c3c3   -     Failure    -                  -        -\n"
        "\n"
        "3 artefacts found\n"
    )
    assert hoard_table(rows[:1], "demo", NOW).endswith("\n1 artefact found\n")
    assert hoard_table([], "demo", NOW) == "No artefacts found for instance 'demo'\n"


@pytest.mark.parametrize(
    ("created", "age"),
    [
        (NOW, "0s ago"),
        (NOW - 59_999, "59s ago"),
        (NOW - 60_000, "1m ago"),
        (NOW - 3_600_000, "1h ago"),
        (NOW - 86_400_000 * 3, "3d ago"),
        (NOW + 5_000, "0s ago"),  # a writer's clock slightly ahead
        (0, "-"),
    ],
)
def test_format_age(created: int, age: str) -> None:
    assert format_age(created, NOW) == age


def test_type_abbreviations_and_payload_preview() -> None:
    assert [short_type(t) for t in ("TerraformCode", "TerraformDocumentation", "PackagedModule")] == [
        "TfCode",
        "TfDocs",
        "Package",
    ]
    assert short_type("A" * 20) == "A" * 20
    assert short_type("A" * 21) == "A" * 17 + "..."
    assert payload_preview("") == "-"
    assert payload_preview("x" * 40) == "x" * 40


def test_hoard_never_prints_escape_sequences() -> None:
    hostile = art(payload="\x1b[2J\x1b]0;pwned\x07", type_="T\x1b[31m", by="B\x07")
    text = hoard_table([hostile], "demo", NOW)
    assert "\x1b" not in text and "\x07" not in text
    assert "␛[2J␛]0;pwned␇" in text


def test_hoard_jsonl_and_pretty_json() -> None:
    a = art(payload='{"html":"<b>"}\x1b')
    lines = hoard_jsonl([a, art(A2)]).splitlines()
    assert [json.loads(line)["id"] for line in lines] == [A1, A2]
    assert list(json.loads(lines[0])) == [
        "id",
        "logical_id",
        "version",
        "structural_type",
        "type",
        "payload",
        "source_artefacts",
        "produced_by_role",
        "created_at_ms",
    ]
    pretty = artefact_pretty_json(a)
    assert pretty.startswith('{\n  "id": "' + A1 + '",\n  "logical_id"')
    assert pretty.endswith("}\n") and "\x1b" not in pretty
    assert json.loads(pretty)["payload"] == '{"html":"<b>"}\x1b'


# ---------------------------------------------------------------------------------------------
# watch


def lines(item: ArtefactItem | ClaimItem | WorkflowItem, output: str = "default") -> list[str]:
    assert output in ("default", "jsonl")
    return watch_lines(item, output="jsonl" if output == "jsonl" else "default", tz=UTC, now_ms=NOW)


def wf(event: str, **data: object) -> WorkflowItem:
    return WorkflowItem(WorkflowEvent(event=event, data=data), NOW + 42)


def test_clock_uses_the_given_zone() -> None:
    assert clock(NOW + 7, UTC) == "13:00:00.007"
    assert clock(NOW, timezone(timedelta(hours=2))) == "15:00:00.000"


def test_watch_artefact_lines() -> None:
    goal = art(created=NOW - 1_500)
    assert lines(ArtefactItem(goal, goal.created_at_ms)) == [
        f"[12:59:58.500] ✨ Artefact created: by=user, type=GoalDefined, id={A1}"
    ]
    review = art(st=StructuralType.REVIEW, type_="Review")
    assert lines(ArtefactItem(review, NOW)) == []
    rework = art(version=2)
    assert lines(ArtefactItem(rework, NOW)) == []
    done = art(st=StructuralType.TERMINAL, type_="Done", by="Poet\x1b[2J")
    assert lines(ArtefactItem(done, NOW)) == [
        f"[13:00:00.000] ✨ Artefact created: by=Poet␛[2J, type=Done, id={A1}",
        f"[13:00:00.000] 🎉 Workflow completed: Terminal artefact created (type=Done, id={A1})",
    ]
    # no timestamp (pre-timestamp data): shown at "now"
    assert lines(ArtefactItem(art(created=0), 0))[0].startswith("[13:00:00.000]")


def test_watch_claim_and_workflow_lines() -> None:
    claim = Claim(id=C1, artefact_id=A1, status=ClaimStatus.PENDING_REVIEW)
    assert lines(ClaimItem(claim, NOW)) == [
        f"[13:00:00.000] ⏳ Claim created: claim={C1}, artefact={A1}, status=pending_review"
    ]
    t = "[13:00:00.042]"
    assert lines(wf("bid_submitted", claim_id=C1, agent_name="Poet", bid_type="exclusive")) == [
        f"{t} 🙋 Bid submitted: agent=Poet, claim={C1}, type=exclusive"
    ]
    image = "sha256:0123456789abcdef0123"
    assert lines(wf("claim_granted", claim_id=C1, agent_name="Poet", grant_type="claim", agent_image_id=image)) == [
        f"{t} 🏆 Claim granted: agent=Poet@0123456789ab, claim={C1}, type=claim"
    ]
    assert lines(wf("claim_granted", claim_id=C1, agent_name="Poet", grant_type="claim", agent_image_id="")) == [
        f"{t} 🏆 Claim granted: agent=Poet, claim={C1}, type=claim"
    ]
    assert lines(wf("review_approved", original_artefact_id=A1, reviewer_role="Critic")) == [
        f"{t} ✅ Review Approved: by=Critic for artefact {A1}"
    ]
    assert lines(wf("review_rejected", original_artefact_id=A1, reviewer_role="Critic", feedback="no")) == [
        f"{t} ❌ Review Rejected: by=Critic for artefact {A1}"
    ]
    assert lines(
        wf(
            "feedback_claim_created",
            feedback_claim_id=C2,
            original_claim_id=C1,
            target_agent_role="Poet",
            iteration=2.0,
        )
    ) == [f"{t} 🔄 Rework Assigned: to=Poet for claim {C2} (iteration 2)"]
    reworked = wf(
        "artefact_reworked",
        new_artefact_id=A2,
        logical_id=A1,
        new_version=2,
        previous_version_id=A1,
        artefact_type="Poem",
        produced_by_role="Poet",
    )
    assert lines(reworked) == [f"{t} 🔄 Artefact Reworked (v2): by=Poet, type=Poem, id={A2}"]
    assert lines(wf("something\x1b_new")) == [f"{t} ❓ Unknown event: something␛_new"]
    assert lines(wf("bid_submitted", claim_id=C1)) == [f"{t} 🙋 Bid submitted: agent=?, claim={C1}, type=?"]


def test_watch_jsonl_records() -> None:
    done = art(st=StructuralType.TERMINAL, type_="Done", by="Poet", created=NOW - 1_000)
    records = [json.loads(line) for line in lines(ArtefactItem(done, done.created_at_ms), "jsonl")]
    assert records == [
        {"data": done.to_event(), "event": "artefact_created", "timestamp": "2025-10-29T12:59:59Z"},
        {
            "data": {"artefact_id": A1, "artefact_type": "Done", "produced_by": "Poet"},
            "event": "workflow_completed",
            "timestamp": "2025-10-29T12:59:59Z",
        },
    ]
    review = art(st=StructuralType.REVIEW, type_="Review")
    assert len(lines(ArtefactItem(review, NOW), "jsonl")) == 1  # every artefact, Reviews included
    claim = Claim(id=C1, artefact_id=A1, status=ClaimStatus.PENDING_REVIEW)
    (claim_line,) = lines(ClaimItem(claim, NOW), "jsonl")
    assert claim_line == (
        '{"data":{"id":"' + C1 + '","artefact_id":"' + A1 + '","status":"pending_review",'
        '"granted_review_agents":[],"granted_parallel_agents":[],"granted_exclusive_agent":""},'
        '"event":"claim_created","timestamp":"2025-10-29T13:00:00Z"}'
    )
    (bid_line,) = lines(wf("bid_submitted", claim_id=C1, bid_type="ignore", agent_name="X"), "jsonl")
    assert bid_line.startswith('{"data":{"agent_name":"X","bid_type":"ignore","claim_id":')  # Go sorts map keys


def test_history_reconstruction() -> None:
    goal = art(A1, created=NOW - 10_000)
    poem = art(A2, type_="Poem", by="Poet", created=NOW - 5_000, sources=[A1])
    v2 = art(C2, type_="Poem", by="Poet", version=2, created=NOW - 1_000, sources=[A2, R1])
    review = art(R1, type_="Review", st=StructuralType.REVIEW, by="Critic", payload='{"fix": 1}', sources=[A2])
    review = review.model_copy(update={"created_at_ms": NOW - 3_000})
    claim = Claim.model_validate(
        {
            "id": C1,
            "artefact_id": A1,
            "status": "complete",
            "granted_exclusive_agent": "Poet",
            "phase_state": {"current": "exclusive", "all_bids": {"Poet": "exclusive", "Critic": "ignore"}},
            "granted_agent_image_id": "sha256:feedfacecafe0000",
        }
    )
    items = history_items([goal, poem, v2, review], [claim], ArtefactFilter())
    summary = [(i.ts_ms, type(i).__name__, i.event.event if isinstance(i, WorkflowItem) else "") for i in items]
    assert summary == [
        (NOW - 10_000, "ArtefactItem", ""),
        (NOW - 10_000, "ClaimItem", ""),
        (NOW - 9_999, "WorkflowItem", "bid_submitted"),  # Critic (sorted by name)
        (NOW - 9_998, "WorkflowItem", "bid_submitted"),  # Poet
        (NOW - 9_900, "WorkflowItem", "claim_granted"),
        (NOW - 5_000, "ArtefactItem", ""),
        (NOW - 3_000, "ArtefactItem", ""),  # the Review itself
        (NOW - 3_000, "WorkflowItem", "review_rejected"),
        (NOW - 1_001, "WorkflowItem", "artefact_reworked"),
        (NOW - 1_000, "ArtefactItem", ""),
    ]
    granted = items[4]
    assert isinstance(granted, WorkflowItem)
    assert granted.event.data["agent_image_id"] == "sha256:feedfacecafe0000"
    reworked = items[8]
    assert isinstance(reworked, WorkflowItem)
    assert reworked.event.data["previous_version_id"] == A2 and reworked.event.data["new_version"] == 2

    only_poems = history_items([goal, poem, v2, review], [claim], ArtefactFilter(type_glob="Poem"))
    assert [i.artefact.id for i in only_poems if isinstance(i, ArtefactItem)] == [A2, C2]
    recent = history_items([goal, poem, art(R1, created=0)], [], ArtefactFilter(), created_from_ms=NOW - 6_000)
    assert [i.artefact.id for i in recent if isinstance(i, ArtefactItem)] == [A2]


def test_review_rule_and_dedupe_keys() -> None:
    assert is_approval("{}") and is_approval(" [ ] ") and not is_approval('{"error": 1}')
    assert not is_approval("") and not is_approval("null") and not is_approval("[1]")
    assert dedupe_key(ArtefactItem(art(), NOW)) == ("artefact", A1)
    assert dedupe_key(wf("bid_submitted", claim_id=C1, agent_name="P", bid_type="x")) == ("bid_submitted", C1, "P")
    assert dedupe_key(wf("feedback_claim_created", feedback_claim_id=C1)) is None
    assert is_terminal(ArtefactItem(art(st=StructuralType.TERMINAL), NOW))
    assert not is_terminal(ArtefactItem(art(), NOW))
