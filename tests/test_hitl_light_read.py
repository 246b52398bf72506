"""holt questions / pending read open requests and the published policy without pydantic, exactly as the models do:
what the light read accepts the models read the same; anything else goes through the models (same refusal)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import ValidationError

from holt_core.blackboard import Blackboard
from holt_core.errors import MalformedRecord
from holt_core.hitl.client import OpenItem
from holt_core.hitl.models import Approval, HitlRequest, Hop, LadderStep, RequestKind, RequestStatus
from holt_core.hitl.open_items import OpenItemView, open_item_fields
from holt_core.hitl.policy import HitlPolicy
from holt_core.hitl.published_policy import is_plain_policy
from holt_core.hitl.request_record import plain_open_request
from holt_core.models import new_id
from tests.clirun import holt

NOW = 1_700_000_100_000


def _requests() -> list[HitlRequest]:
    return [
        HitlRequest(id=new_id(), kind=RequestKind.QUESTION, created_ms=1_700_000_000_000, text="Which db?\x1b[31m",
                    role="asker", deadline_ms=1_700_000_900_000, hops=[Hop(to="role:lead", at_ms=1, outcome="timeout"),
                                                                        Hop(to="human", at_ms=2)]),
        HitlRequest(id=new_id(), kind=RequestKind.APPROVAL, created_ms=1_700_000_000_001, risk="critical",
                    action="deploy", target="prod", plan={"steps": ["a", "b\u202e"], "n": 1.5}, digest="ab" * 32,
                    min_approvals=2, approver_roles=["approver"], require_justification=True, escalation_level=1,
                    ladder=[LadderStep(after_s=60, to=["lead"]), LadderStep(after_s=120.5, to=["cto"])],
                    claim_id=new_id(), workflow_id=new_id(), started_by="alice"),
        HitlRequest(id=new_id(), kind=RequestKind.POST_REVIEW, created_ms=1_700_000_000_002, text="review it",
                    review_of=new_id(), bypassed_by="bob"),
        HitlRequest(id=new_id(), kind=RequestKind.APPROVAL, created_ms=5, plan="rm -rf /\x07"),
    ]


def _model_item(raw: dict[str, str]) -> dict[str, Any]:
    return OpenItem.of(HitlRequest.from_hash(raw, "k"), NOW).model_dump(mode="json")


@pytest.mark.parametrize("index", range(4))
def test_plain_open_requests_read_light_as_the_model_reads_them(index: int) -> None:
    raw = _requests()[index].to_hash()
    light = plain_open_request(raw)
    assert light is not None
    assert OpenItemView(**open_item_fields(light, NOW)).to_json() == _model_item(raw)
    assert list(OpenItemView._fields) == list(OpenItem.model_fields)


def _mutations(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """(path, odd value) for every value in ``data``: wrong types, bounds, empties."""
    odd: list[Any] = [None, True, 0, -1, 1.5, "", "x", "12", [], {}, ["x"], {"a": 1}]
    out = [(path, v) for v in odd] if path else []
    if isinstance(data, dict):
        for key, value in data.items():
            out += _mutations(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out += _mutations(value, (*path, i))
    return out


def _set(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    copied = copy.deepcopy(data)
    target = copied
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copied


def test_a_request_the_light_read_accepts_is_one_the_model_reads_the_same() -> None:
    checked = 0
    for req in _requests():
        raw = req.to_hash()
        record = json.loads(raw["record"])
        for path, value in _mutations(record):
            mutated = {**raw, "record": json.dumps(_set(record, path, value))}
            light = plain_open_request(mutated)
            if light is None:
                continue  # read through the models, which decide
            checked += 1
            assert OpenItemView(**open_item_fields(light, NOW)).to_json() == _model_item(mutated), path
    assert checked > 50


@pytest.mark.parametrize("over", [{"record": "{"}, {"record": '{"id": "x"}'}, {"record": '{"id": 1, "kind": "question",'
                                  ' "created_ms": 1}'}, {"rev": "x"}, {"record": '{"id": "a", "kind": "nope", '
                                  '"created_ms": 1}'}, {"record": '{"id": "a", "kind": "question", "created_ms": 1, '
                                  '"hops": [{"to": "human"}]}'}])
def test_a_malformed_request_is_left_to_the_model_which_refuses_it(over: dict[str, str]) -> None:
    raw = {**_requests()[0].to_hash(), **over}
    assert plain_open_request(raw) is None
    with pytest.raises((MalformedRecord, ValueError)):
        HitlRequest.from_hash(raw, "k")


def test_requests_with_a_human_act_or_a_decision_are_read_in_full() -> None:
    approved = _requests()[1].model_copy(update={"approvals": [Approval(operator="alice", at_ms=1, digest="d")]})
    decided = _requests()[1].model_copy(update={"status": RequestStatus.APPROVED})
    for req in (approved, decided):
        assert plain_open_request(req.to_hash()) is None


def _rich_policy() -> HitlPolicy:
    return HitlPolicy.model_validate({
        "operators": {"alice": ["approver", "lead"], "bob": {"roles": ["approver", "breakglass"]}},
        "risk_levels": {"low": {"auto_approve": True}, "medium": {"approvers": ["approver"]},
                        "high": {"approvers": ["approver"], "escalate_after": ["30m", {"after": "1h", "to": ["lead"]}],
                                 "expire_after": "2h"},
                        "critical": {"approvers": ["lead"], "min_approvals": 2, "require_justification": True}},
        "rules": [{"match": {"artefact_type": "Deploy*"}, "risk": "high"},
                  {"match": {"produced_by": "ops", "action": "db.*"}, "risk": "critical"}],
        "questions": {"expire_after": "1h", "on_expire": {"default": "no"}, "answerers": ["lead"]},
        "bypass_role": "breakglass",
        "notify": {"webhooks": [{"url": "https://hooks.example/x", "format": "slack", "events": ["decision"]}]},
    })


def _validates(text: str) -> bool:
    try:
        HitlPolicy.model_validate_json(text)
    except ValidationError:
        return False
    return True


def test_published_policies_are_plain_and_anything_the_check_accepts_the_model_accepts() -> None:
    for policy in (HitlPolicy(), _rich_policy()):
        text = policy.model_dump_json()
        assert is_plain_policy(text)
        data = json.loads(text)
        accepted = 0
        for path, value in _mutations(data):
            mutated = json.dumps(_set(data, path, value))
            if is_plain_policy(mutated):
                accepted += 1
                assert _validates(mutated), path
        assert accepted > 10


@pytest.mark.parametrize("text", ["{}", '{"questions": {"expire_after": "1h"}}', '{"risk_levels": {"low": {}}}'])
def test_an_odd_but_valid_policy_is_left_to_the_model_which_reads_it(text: str) -> None:
    assert not is_plain_policy(text)
    assert _validates(text)


@pytest.mark.parametrize("text", ["junk", '{"x": 1}', "[]", "null",
                                  '{"risk_levels": {"high": {"auto_approve": true}}}'])
def test_a_malformed_policy_is_left_to_the_model_which_refuses_it(text: str) -> None:
    assert not is_plain_policy(text)
    assert not _validates(text)


async def _open(bb: Blackboard, req: HitlRequest, raw: dict[str, str] | None = None) -> None:
    await bb.redis.hset(bb.keys.hitl_request(req.id), mapping=raw or req.to_hash())
    await bb.redis.zadd(bb.keys.hitl_open, {req.id: req.created_ms})


async def test_the_cli_lists_plain_requests_and_skips_a_malformed_one_as_the_models_do(
        bb: Blackboard, cli_env: dict[str, str]) -> None:
    await bb.redis.set(bb.keys.hitl_policy, HitlPolicy().model_dump_json())
    question, approval = _requests()[0], _requests()[1]
    await _open(bb, question)
    await _open(bb, approval)
    broken = HitlRequest(id=new_id(), kind=RequestKind.QUESTION, created_ms=3)
    await _open(bb, broken, {**broken.to_hash(), "record": '{"id": 5}'})
    for command, shown in (("questions", question), ("pending", approval)):
        code, out, err = await holt(cli_env, command, "--name", bb.instance, "--json")
        assert code == 0 and "Traceback" not in err, err
        assert [i["id"] for i in json.loads(out)] == [shown.id]


async def test_a_malformed_published_policy_is_one_line_of_error(bb: Blackboard, cli_env: dict[str, str]) -> None:
    await bb.redis.set(bb.keys.hitl_policy, '{"risk_levels": {"high": {"auto_approve": true}}}')
    for command in ("questions", "pending"):
        code, _, err = await holt(cli_env, command, "--name", bb.instance)
        lines = err.splitlines()
        assert code == 1 and "Traceback" not in err, err
        assert lines[0].startswith(f"error: malformed record at {bb.keys.hitl_policy}: not a hitl policy: "), lines


async def test_text_output_shows_hostile_text_as_escapes(bb: Blackboard, cli_env: dict[str, str]) -> None:
    """An agent writes the question, the action, the target and the plan: none of their control or bidi
    characters reaches the terminal raw, on the light path and on the full one."""
    await bb.redis.set(bb.keys.hitl_policy, HitlPolicy().model_dump_json())
    hostile = "\x1b]0;pwned\x07\u202eevil\x9b1m"
    question = HitlRequest(id=new_id(), kind=RequestKind.QUESTION, created_ms=1, text=f"Which db?{hostile}")
    approval = HitlRequest(id=new_id(), kind=RequestKind.APPROVAL, created_ms=2, action=f"deploy{hostile}",
                           target=f"prod{hostile}", plan={"steps": [hostile]}, digest="ab" * 32)
    answered = HitlRequest(id=new_id(), kind=RequestKind.QUESTION, created_ms=3, text=hostile,
                           hops=[Hop(to=f"role:x{hostile}", at_ms=1, outcome="timeout"), Hop(to="human", at_ms=2)])
    for req in (question, approval, answered):
        await _open(bb, req)
    for command in ("questions", "pending"):
        code, out, err = await holt(cli_env, command, "--name", bb.instance)
        text = out.decode()
        assert code == 0, err
        assert "pwned" in text and not any(c in text for c in "\x1b\x07\u202e\x9b"), repr(text)
