"""The light record reads a Redis hash exactly as the pydantic Artefact does (fast path or fallback)."""

from __future__ import annotations

import pytest
from redis.exceptions import ResponseError

from holt_core.artefact_record import HASH_FIELDS, ArtefactRecord, _fast, records_from_rows
from holt_core.errors import MalformedRecord
from holt_core.models import Artefact, StructuralType, new_id


def _hash(**over: str) -> dict[str, str]:
    a = Artefact(id=new_id(), logical_id=new_id(), version=2, structural_type=StructuralType.REVIEW, type="Review",
                 payload='{"ok": 1}', source_artefacts=[new_id()], produced_by_role="reviewer", created_at_ms=42)
    return {**a.to_hash(), **over}


def test_plain_hashes_take_the_fast_path_and_read_as_the_model_does() -> None:
    for raw in (_hash(), _hash(source_artefacts="[]"), _hash(source_artefacts=f'["{new_id()}","{new_id()}"]'),
                _hash(source_artefacts="")):
        fast = _fast(raw)
        assert fast is not None
        assert fast == Artefact.from_hash(raw, "k") and fast.to_event() == Artefact.from_hash(raw, "k").to_event()


@pytest.mark.parametrize("over", [{"version": "+3"}, {"created_at_ms": "12.5"}, {"created_at_ms": "junk"},
                                  {"source_artefacts": "null"}])
def test_odd_but_valid_hashes_read_as_the_model_does(over: dict[str, str]) -> None:
    raw = _hash(**over)
    assert ArtefactRecord.from_hash(raw, "k").to_event() == Artefact.from_hash(raw, "k").to_event()


@pytest.mark.parametrize("over", [{"id": "NOT-A-UUID"}, {"version": "0"}, {"version": "x"},
                                  {"structural_type": "Bogus"}, {"type": ""}, {"source_artefacts": '["nope"]'},
                                  {"source_artefacts": "{"}, {"produced_by_role": ""}])
def test_malformed_hashes_are_refused_with_the_models_reason(over: dict[str, str]) -> None:
    raw = _hash(**over)
    assert _fast(raw) is None
    with pytest.raises(MalformedRecord) as expected:
        Artefact.from_hash(raw, "k")
    with pytest.raises(MalformedRecord) as got:
        ArtefactRecord.from_hash(raw, "k")
    assert str(got.value) == str(expected.value)


def test_a_missing_field_falls_back_to_full_validation() -> None:
    raw = _hash()
    del raw["logical_id"]
    assert _fast(raw) is None
    with pytest.raises(MalformedRecord):
        ArtefactRecord.from_hash(raw, "k")


def _row(raw: dict[str, str]) -> list[str | None]:
    return [raw.get(f) for f in HASH_FIELDS]


def test_a_page_of_plain_rows_is_decoded_at_once_as_the_model_reads_each() -> None:
    raws = [_hash(), _hash(source_artefacts="[]"), _hash(source_artefacts=f'["{new_id()}","{new_id()}"]'),
            _hash(version="12", created_at_ms="0")]
    got = records_from_rows([_row(r) for r in raws])
    assert got == [Artefact.from_hash(r, "k") for r in raws]
    assert all(type(a) is ArtefactRecord for a in got)


@pytest.mark.parametrize("over", [{"version": "0"}, {"version": "+3"}, {"id": "NOT-A-UUID"}, {"source_artefacts": ""},
                                  {"source_artefacts": '["nope"]'}, {"created_at_ms": "junk"}, {"type": ""},
                                  {"structural_type": "Bogus"}, {"id": _hash()["id"] + "\n"}])
def test_one_odd_row_sends_its_page_row_by_row_and_only_it_to_the_full_read(over: dict[str, str]) -> None:
    plain, odd = _hash(), _hash(**over)
    got = records_from_rows([_row(plain), _row(odd), ResponseError("WRONGTYPE"), [None] * len(HASH_FIELDS)])
    assert got[0] == Artefact.from_hash(plain, "k")
    assert got[1] == _fast(odd)  # None (the caller re-reads it with HGETALL) unless the fast path reads it
    assert got[2:] == [None, None]
