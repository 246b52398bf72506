"""The registry record reads without pydantic exactly as the pydantic model reads it (fast path or fallback)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from holt_core.instance_model import InstanceModel
from holt_core.instances import InstanceRecord, _fast

FULL = InstanceRecord(name="demo", run_id="r1", workspace_path="/w/é", started_at="2026-01-01T00:00:00+00:00",
                      orchestrator_pid=12, supervisor_pid=34, log_dir="/logs", status="running",
                      api_url="http://127.0.0.1:1")


def _model_reads(name: str, raw: str) -> InstanceRecord:
    """What the registry read before the light record (the pydantic model, an unknown record when it refuses)."""
    try:
        return InstanceRecord(**InstanceModel.model_validate_json(raw).model_dump())
    except ValidationError:
        return InstanceRecord.unknown(name)


def _json(**over: Any) -> str:
    data: dict[str, Any] = json.loads(FULL.to_json())
    data.update(over)
    return json.dumps({k: v for k, v in data.items() if v is not _DROP})


_DROP = object()


def test_what_holt_writes_takes_the_fast_path_and_round_trips() -> None:
    assert _fast(FULL.to_json()) == FULL
    assert InstanceModel.model_validate_json(FULL.to_json()).model_dump() == json.loads(FULL.to_json())
    minimal = json.dumps({"name": "a", "run_id": "", "workspace_path": "", "started_at": "", "extra": [1]})
    assert _fast(minimal) == _model_reads("a", minimal) == InstanceRecord(name="a", run_id="", workspace_path="",
                                                                          started_at="")


@pytest.mark.parametrize("raw", [_json(supervisor_pid="34"), _json(orchestrator_pid=12.0), _json(api_url=None)])
def test_odd_records_go_through_the_model_and_read_as_it_does(raw: str) -> None:
    assert _fast(raw) is None
    assert InstanceRecord.from_json("demo", raw) == _model_reads("demo", raw)


@pytest.mark.parametrize("raw", ["not json", "[1]", "null", _json(name=_DROP), _json(run_id=5), _json(status=["x"]),
                                 _json(supervisor_pid="pid"), _json(supervisor_pid=True, orchestrator_pid=1.5),
                                 '{"name": "demo", "run_id": "", "workspace_path": "", "started_at": "", "x": NaN}',
                                 _json(log_dir="\ud800")])
def test_malformed_records_read_as_unknown_exactly_as_the_model_decides(raw: str) -> None:
    assert _fast(raw) is None
    assert InstanceRecord.from_json("demo", raw) == _model_reads("demo", raw)


def test_a_record_that_does_not_decode_is_listed_as_unknown() -> None:
    for raw in ("not json", _json(run_id=5), _json(name=_DROP)):
        assert InstanceRecord.from_json("demo", raw) == InstanceRecord.unknown("demo")
