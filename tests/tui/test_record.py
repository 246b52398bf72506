"""The light record reads a Redis hash exactly as the pydantic Artefact does (fast path or fallback)."""

from __future__ import annotations

import pytest

from holt_core.errors import MalformedRecord
from holt_core.models import Artefact, StructuralType, new_id
from holt_tui.record import ArtefactRecord, _fast


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
