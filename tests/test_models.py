"""Both encodings of every model, and records shaped exactly as the Go version writes them."""

from __future__ import annotations

import json

import pytest

from holt_core.errors import MalformedRecord
from holt_core.models import (
    Artefact,
    BidType,
    Claim,
    ClaimStatus,
    GrantNotification,
    GrantQueue,
    Phase,
    PhaseState,
    StructuralType,
    WorkflowEvent,
    new_id,
)

A = "0b6e1f3c-4d2a-4c1e-9f6a-1a2b3c4d5e6f"
B = "1c7f2a4d-5e3b-4d2f-8a7b-2b3c4d5e6f70"
C = "2d8a3b5e-6f4c-4e3a-9b8c-3c4d5e6f7081"


def make_artefact(**over: object) -> Artefact:
    base: dict[str, object] = {
        "id": A,
        "logical_id": B,
        "version": 2,
        "structural_type": StructuralType.STANDARD,
        "type": "RecipeDraft",
        "payload": 'line one\n<tag> & "quoted" ünïcode',
        "source_artefacts": [C],
        "produced_by_role": "Drafter",
        "created_at_ms": 1730412345678,
    }
    base.update(over)
    return Artefact.model_validate(base)


def make_claim(**over: object) -> Claim:
    base: dict[str, object] = {
        "id": A,
        "artefact_id": B,
        "status": ClaimStatus.PENDING_PARALLEL,
        "granted_review_agents": ["Reviewer"],
        "granted_parallel_agents": ["Formatter", "Linter"],
        "granted_exclusive_agent": "",
        "additional_context_ids": [C],
        "termination_reason": "",
        "phase_state": PhaseState(
            current=Phase.PARALLEL,
            granted_agents=["Formatter", "Linter"],
            received={"Formatter": C},
            all_bids={"Formatter": "claim", "Linter": "claim", "Reviewer": "review"},
            start_time_ms=1730412345678,
        ),
        "grant_queue": GrantQueue(paused_at_ms=1730412345000, agent_name="Coder", position=0),
        "last_grant_agent": "",
        "last_grant_time": 0,
        "artefact_expected": True,
        "granted_agent_image_id": "sha256:abc",
    }
    base.update(over)
    return Claim.model_validate(base)


class TestArtefact:
    def test_hash_round_trip(self) -> None:
        art = make_artefact()
        h = art.to_hash()
        assert h["version"] == "2"
        assert h["created_at_ms"] == "1730412345678"
        assert json.loads(h["source_artefacts"]) == [C]
        assert set(h) == {
            "id", "logical_id", "version", "structural_type", "type", "payload",
            "source_artefacts", "produced_by_role", "created_at_ms",
        }
        assert Artefact.from_hash(h) == art

    def test_event_round_trip_keeps_field_order_and_types(self) -> None:
        art = make_artefact()
        text = art.to_json()
        obj = json.loads(text)
        assert list(obj) == [
            "id", "logical_id", "version", "structural_type", "type", "payload",
            "source_artefacts", "produced_by_role", "created_at_ms",
        ]
        assert obj["version"] == 2 and isinstance(obj["source_artefacts"], list)
        assert Artefact.from_json(text) == art

    def test_reads_go_hash_with_null_list_missing_fields_and_unknown_fields(self) -> None:
        raw = {
            b"id": A.encode(),
            b"logical_id": B.encode(),
            b"version": b"1",
            b"structural_type": b"Standard",
            b"type": b"GoalDefined",
            b"payload": b"Write a recipe",
            b"source_artefacts": b"null",
            b"produced_by_role": b"user",
            b"some_future_field": b"whatever",
            # created_at_ms missing: pre-M3.9 data
        }
        art = Artefact.from_hash(raw)
        assert art.source_artefacts == []
        assert art.created_at_ms == 0

    def test_reads_go_event_with_escaped_characters(self) -> None:
        go_json = (
            '{"id":"' + A + '","logical_id":"' + A + '","version":1,"structural_type":"Review",'
            '"type":"Review","payload":"\\u003cb\\u003e \\u0026 ok","source_artefacts":null,'
            '"produced_by_role":"Reviewer","created_at_ms":1730412345678,"extra":{"x":1}}'
        )
        art = Artefact.from_json(go_json)
        assert art.payload == "<b> & ok"
        assert art.source_artefacts == []
        assert art.structural_type is StructuralType.REVIEW

    def test_lenient_created_at_and_strict_version(self) -> None:
        h = make_artefact().to_hash()
        h["created_at_ms"] = "not-a-number"
        assert Artefact.from_hash(h).created_at_ms == 0
        h["version"] = "2.0"
        with pytest.raises(MalformedRecord, match="version"):
            Artefact.from_hash(h, "holt:x:artefact:1")

    @pytest.mark.parametrize(
        ("field", "value", "match"),
        [
            ("id", "not-a-uuid", "id"),
            ("structural_type", "standard", "structural_type"),
            ("type", "", "type"),
            ("source_artefacts", '["nope"]', "source_artefacts"),
            ("source_artefacts", "{broken", "source_artefacts"),
            ("produced_by_role", "", "produced_by_role"),
        ],
    )
    def test_malformed_hash_names_the_field(self, field: str, value: str, match: str) -> None:
        h = make_artefact().to_hash()
        h[field] = value
        with pytest.raises(MalformedRecord, match=match) as info:
            Artefact.from_hash(h, "holt:i:artefact:k")
        assert info.value.key == "holt:i:artefact:k"

    def test_empty_hash_is_malformed(self) -> None:
        with pytest.raises(MalformedRecord, match="empty"):
            Artefact.from_hash({})

    def test_event_that_is_not_an_object(self) -> None:
        with pytest.raises(MalformedRecord):
            Artefact.from_json("[1,2]")
        with pytest.raises(MalformedRecord, match="invalid JSON"):
            Artefact.from_json("{nope")


class TestClaim:
    def test_hash_round_trip_all_fourteen_fields(self) -> None:
        claim = make_claim()
        h = claim.to_hash()
        assert len(h) == 14
        assert h["artefact_expected"] == "1"
        assert h["last_grant_time"] == "0"
        assert json.loads(h["phase_state"])["current"] == "parallel"
        assert json.loads(h["grant_queue"]) == {"paused_at_ms": 1730412345000, "agent_name": "Coder", "position": 0}
        assert Claim.from_hash(h) == claim

    def test_hash_form_of_empty_optional_objects_is_empty_string(self) -> None:
        h = make_claim(phase_state=None, grant_queue=None, artefact_expected=False).to_hash()
        assert h["phase_state"] == "" and h["grant_queue"] == "" and h["artefact_expected"] == "0"

    def test_event_form_nests_objects_and_omits_empty_fields(self) -> None:
        fresh = make_claim(
            status=ClaimStatus.PENDING_REVIEW,
            granted_review_agents=[],
            granted_parallel_agents=[],
            additional_context_ids=[],
            phase_state=None,
            grant_queue=None,
            artefact_expected=False,
            granted_agent_image_id="",
        )
        assert json.loads(fresh.to_json()) == {
            "id": A,
            "artefact_id": B,
            "status": "pending_review",
            "granted_review_agents": [],
            "granted_parallel_agents": [],
            "granted_exclusive_agent": "",
        }
        full = json.loads(make_claim().to_json())
        assert isinstance(full["phase_state"], dict) and isinstance(full["grant_queue"], dict)
        assert Claim.from_json(make_claim().to_json()) == make_claim()

    def test_reads_go_claim_hash(self) -> None:
        # An ordinary claim as the Go orchestrator writes it after the initial grant.
        raw = {
            "id": A,
            "artefact_id": B,
            "status": "pending_exclusive",
            "granted_review_agents": "null",
            "granted_parallel_agents": "[]",
            "granted_exclusive_agent": "Coder",
            "additional_context_ids": "null",
            "termination_reason": "",
            "phase_state": '{"current":"exclusive","granted_agents":["Coder"],"received":{},'
            '"all_bids":{"Coder":"exclusive","Reviewer":"ignore","Weird":"maybe"},"start_time_ms":1730412345678}',
            "grant_queue": "",
            "last_grant_agent": "",
            "last_grant_time": "0",
            "artefact_expected": "false",
            "granted_agent_image_id": "",
        }
        claim = Claim.from_hash(raw)
        assert claim.granted_review_agents == [] and claim.additional_context_ids == []
        assert claim.phase_state is not None and claim.phase_state.current is Phase.EXCLUSIVE
        assert claim.phase_state.sanitised_bids()["Weird"] is BidType.IGNORE
        assert claim.grant_queue is None and claim.artefact_expected is False
        assert claim.granted_agents == ["Coder"]

    def test_reads_go_feedback_claim_event(self) -> None:
        go = (
            '{"id":"' + A + '","artefact_id":"' + B + '","status":"pending_assignment",'
            '"granted_review_agents":[],"granted_parallel_agents":[],"granted_exclusive_agent":"Drafter",'
            '"additional_context_ids":["' + C + '"]}'
        )
        claim = Claim.from_json(go)
        assert claim.status is ClaimStatus.PENDING_ASSIGNMENT
        assert claim.additional_context_ids == [C]

    @pytest.mark.parametrize("flag", ["1", "t", "T", "TRUE", "true", "True"])
    def test_go_parse_bool_truthy(self, flag: str) -> None:
        h = make_claim().to_hash()
        h["artefact_expected"] = flag
        assert Claim.from_hash(h).artefact_expected is True

    @pytest.mark.parametrize(("field", "value"), [("status", "pending_consensus"), ("phase_state", "[1]"),
                                                  ("phase_state", "{oops"), ("id", "x")])
    def test_malformed_claim(self, field: str, value: str) -> None:
        h = make_claim().to_hash()
        h[field] = value
        with pytest.raises(MalformedRecord):
            Claim.from_hash(h)


class TestSmallRecords:
    def test_grant_notification_is_sorted_string_map(self) -> None:
        text = GrantNotification(claim_id=A, claim_type=Phase.REVIEW).to_json()
        assert text == '{"claim_id":"' + A + '","claim_type":"review","event_type":"grant"}'

    def test_grant_notification_carries_the_target_first_in_key_order(self) -> None:
        grant = GrantNotification(claim_id=A, claim_type=Phase.EXCLUSIVE, artefact_id=B)
        text = grant.to_json()
        assert text == ('{"artefact_id":"' + B + '","claim_id":"' + A
                        + '","claim_type":"exclusive","event_type":"grant"}')
        assert list(json.loads(text)) == sorted(json.loads(text))
        assert GrantNotification.model_validate_json(text) == grant

    def test_grant_notification_without_target_round_trips_and_omits_it(self) -> None:
        grant = GrantNotification(claim_id=A, claim_type="claim")
        assert "artefact_id" not in json.loads(grant.to_json())
        back = GrantNotification.model_validate_json(grant.to_json())
        assert back == grant and back.artefact_id == ""

    def test_grant_notification_as_go_writes_it_parses(self) -> None:
        # The Go orchestrator's notification: no artefact_id; unknown keys from newer writers are ignored.
        go = '{"claim_id":"' + A + '","claim_type":"review","event_type":"grant"}'
        grant = GrantNotification.model_validate_json(go)
        assert (grant.claim_id, grant.claim_type, grant.event_type, grant.artefact_id) == (A, Phase.REVIEW, "grant", "")
        newer = '{"artefact_id":"' + B + '","claim_id":"' + A + '","claim_type":"claim","event_type":"grant","x":"1"}'
        assert GrantNotification.model_validate_json(newer).artefact_id == B
        odd = '{"artefact_id":null,"claim_id":"' + A + '","claim_type":"claim","event_type":"grant"}'
        assert GrantNotification.model_validate_json(odd).artefact_id == ""  # a bad hint never drops the grant

    def test_workflow_event_round_trip_and_null_data(self) -> None:
        ev = WorkflowEvent(event="bid_submitted", data={"claim_id": A, "agent_name": "X", "bid_type": "claim"})
        assert WorkflowEvent.from_json(ev.to_json()) == ev
        assert WorkflowEvent.from_json('{"event":"future_thing","data":null}').data == {}
        with pytest.raises(MalformedRecord):
            WorkflowEvent.from_json('{"data":{}}')

    def test_bid_sanitise(self) -> None:
        assert BidType.sanitise("exclusive") is BidType.EXCLUSIVE
        assert BidType.sanitise("EXCLUSIVE") is BidType.IGNORE

    def test_new_ids_are_canonical(self) -> None:
        ident = new_id()
        assert make_artefact(id=ident, logical_id=ident).id == ident
