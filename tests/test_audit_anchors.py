"""Audit anchors: signed checkpoints outside Redis catch a deleted, truncated or recomputed trail."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from holt_core.audit import ALG_SHA256, AuditRecord, AuditTrail
from holt_core.audit_anchors import (
    CHECKPOINT_FILE_ENV,
    REASON_DESTROYED,
    SIGNING_KEY_ENV,
    VERIFY_KEY_ENV,
    Anchor,
    AnchorSettings,
    Checkpoint,
    CheckpointKeys,
    anchor_forever,
    append_checkpoint,
    check_length,
    read_checkpoints,
    signature_problems,
)
from holt_core.blackboard import Blackboard
from holt_core.models import Artefact, StructuralType, new_id, now_ms
from holt_core.tool_runner import parse_tool_output
from tests.clirun import holt
from tests.engine import poll

KEY = "anchor-test-key"


def _trail(bb: Blackboard, key: str | None = None) -> AuditTrail:
    return AuditTrail(bb.redis, bb.keys, key=key.encode() if key else None)


async def _acts(trail: AuditTrail, n: int) -> list[AuditRecord]:
    """n decisions by people (each anchors the trail) between agent records."""
    out = []
    for i in range(n):
        await trail.append(operator="Coder", action="test", details={"i": i})
        out.append(await trail.append(operator=f"human:op{i}", action="approved", subject=f"r{i}"))
    return out


async def _verify(env: dict[str, str], instance: str, *extra: str) -> tuple[int, str]:
    code, out, err = await holt(env, "audit", "verify", "--name", instance, *extra)
    return code, out.decode() + err


def _keyed(env: dict[str, str]) -> dict[str, str]:
    return {**env, "HOLT_AUDIT_KEY": KEY}


async def test_untouched_trail_passes_against_its_checkpoint(bb: Blackboard, cli_env: dict[str, str]) -> None:
    await _acts(_trail(bb), 3)
    checkpoints = read_checkpoints(AnchorSettings.for_instance(bb.instance).path, bb.instance)
    assert [c.seq for c in checkpoints] == [2, 4, 6]  # one after each human act
    code, text = await _verify(cli_env, bb.instance)
    assert code == 0, text
    assert "6 records" in text and "checkpoint of record 6" in text


async def test_deleted_trail_fails(bb: Blackboard, cli_env: dict[str, str]) -> None:
    await _acts(_trail(bb), 2)
    await bb.redis.set(f"holt:{bb.instance}:other", "1")
    await bb.redis.delete(bb.keys.audit, bb.keys.audit_head)
    code, text = await _verify(cli_env, bb.instance)
    assert code == 1 and "the trail is empty" in text and "deleted" in text, text
    # With every key of the instance gone, the checkpoint still tells a deletion from a typo.
    await bb.redis.delete(f"holt:{bb.instance}:other")
    code, text = await _verify(cli_env, bb.instance)
    assert code == 1 and "is gone but the trail is empty" in text, text
    assert "Traceback" not in text


async def test_truncated_trail_with_its_head_moved_back_fails(bb: Blackboard, cli_env: dict[str, str]) -> None:
    records = await _acts(_trail(bb), 3)  # seq 1..6, anchored at 6
    entries = [e async for e in bb.audit.entries()]
    await bb.redis.xdel(bb.keys.audit, entries[-1][0], entries[-2][0])
    fourth = AuditRecord.from_fields(entries[3][1])
    await bb.redis.set(bb.keys.audit_head, f"{fourth.seq}:{fourth.hash}")
    assert records[-1].seq == 6
    code, text = await _verify(cli_env, bb.instance)
    assert code == 1 and "ends at record 4" in text and "recorded 6" in text, text


async def test_keyless_rewrite_fails_while_a_key_is_set(bb: Blackboard, cli_env: dict[str, str]) -> None:
    signed = _trail(bb, KEY)
    await _acts(signed, 3)
    # The forger recomputes the whole chain as plain sha256, with one approver renamed.
    forged: list[AuditRecord] = []
    prev = "0" * 64
    for record in await bb.audit.records():
        operator = "human:mallory" if record.operator == "human:op1" else record.operator
        draft = record.model_copy(update={"operator": operator, "prev_hash": prev, "alg": ALG_SHA256, "hash": ""})
        forged.append(draft.model_copy(update={"hash": hashlib.sha256(draft.canonical()).hexdigest()}))
        prev = forged[-1].hash
    await bb.redis.delete(bb.keys.audit)
    for record in forged:
        await bb.redis.xadd(bb.keys.audit, record.to_fields())
    await bb.redis.set(bb.keys.audit_head, f"{forged[-1].seq}:{forged[-1].hash}")
    code, text = await _verify(_keyed(cli_env), bb.instance)
    assert code == 1 and "unsigned while HOLT_AUDIT_KEY is set" in text, text
    # Even with the checkpoint file gone too, the unsigned chain is refused.
    AnchorSettings.for_instance(bb.instance).path.unlink()
    code, text = await _verify(_keyed(cli_env), bb.instance)
    assert code == 1 and "recomputed without the key" in text, text


async def test_rewritten_record_differs_from_its_checkpoint(bb: Blackboard, cli_env: dict[str, str]) -> None:
    # Without a key a forger can recompute the chain, but not the checkpoint already written outside Redis.
    await _acts(_trail(bb), 2)
    forged: list[AuditRecord] = []
    prev = "0" * 64
    for record in await bb.audit.records():
        subject = "forged" if record.seq == 2 else record.subject
        draft = record.model_copy(update={"subject": subject, "prev_hash": prev, "hash": ""})
        forged.append(draft.model_copy(update={"hash": hashlib.sha256(draft.canonical()).hexdigest()}))
        prev = forged[-1].hash
    await bb.redis.delete(bb.keys.audit)
    for record in forged:
        await bb.redis.xadd(bb.keys.audit, record.to_fields())
    await bb.redis.set(bb.keys.audit_head, f"{forged[-1].seq}:{forged[-1].hash}")
    code, text = await _verify(cli_env, bb.instance)
    assert code == 1 and "record 2 differs from the checkpoint" in text, text


async def test_external_checkpoint_copy(bb: Blackboard, cli_env: dict[str, str], tmp_path: Path) -> None:
    await _acts(_trail(bb, KEY), 2)
    local = AnchorSettings.for_instance(bb.instance).path
    external = tmp_path / "offsite.jsonl"
    external.write_bytes(local.read_bytes())
    code, text = await _verify(_keyed(cli_env), bb.instance, "--checkpoint", str(external))
    assert code == 0, text
    code, text = await _verify(_keyed(cli_env), bb.instance, "--checkpoint", str(tmp_path / "missing.jsonl"))
    assert code == 1 and "holds no checkpoint" in text, text
    # The attacker also removes the local checkpoints: the external copy still knows.
    await bb.redis.delete(bb.keys.audit, bb.keys.audit_head)
    local.unlink()
    code, text = await _verify(_keyed(cli_env), bb.instance, "--checkpoint", str(external))
    assert code == 1 and "deleted" in text, text


async def test_ed25519_checkpoints_verify_with_the_public_key_only(
        bb: Blackboard, cli_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private = tmp_path / "anchor.key"
    code, _, err = await holt(cli_env, "audit", "keygen", str(private))
    assert code == 0, err
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    monkeypatch.setenv(SIGNING_KEY_ENV, str(private))
    await _acts(_trail(bb), 2)
    [*_, last] = read_checkpoints(AnchorSettings.for_instance(bb.instance).path, bb.instance)
    assert last.sig_alg == "ed25519"
    auditor = {**cli_env, VERIFY_KEY_ENV: f"{private}.pub"}  # can verify, cannot sign
    code, text = await _verify(auditor, bb.instance)
    assert code == 0 and "checkpoint of record 4" in text, text
    code, text = await _verify(cli_env, bb.instance)  # no public key: the signed checkpoints cannot be trusted
    assert code == 1 and "ed25519-signed" in text, text
    # A forger without the private key appends a checkpoint claiming a shorter trail: refused.
    forged = last.model_copy(update={"seq": 2, "hash": "f" * 64, "ts_ms": last.ts_ms + 1})
    append_checkpoint(AnchorSettings.for_instance(bb.instance).path, forged)
    code, text = await _verify(auditor, bb.instance)
    assert code == 1 and "does not match" in text, text


async def test_checkpoint_file_is_private_and_configurable(
        bb: Blackboard, cli_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "anchors" / "trail.jsonl"
    monkeypatch.setenv(CHECKPOINT_FILE_ENV, str(target))
    await _acts(_trail(bb), 1)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [c.seq for c in read_checkpoints(target, bb.instance)] == [2]
    code, text = await _verify({**cli_env, CHECKPOINT_FILE_ENV: str(target)}, bb.instance)
    assert code == 0 and "checkpoint of record 2" in text, text


def test_forged_or_unsigned_checkpoints_are_not_trusted(tmp_path: Path) -> None:
    keys = CheckpointKeys(hmac_key=KEY.encode())
    good = Checkpoint(instance="i", seq=3, hash="a" * 64, ts_ms=1).signed(keys)
    assert signature_problems([good], keys) is None
    forged = good.model_copy(update={"seq": 1})
    assert "does not match" in (signature_problems([forged], keys) or "")
    unsigned = good.signed(CheckpointKeys())
    assert "unsigned" in (signature_problems([unsigned], keys) or "")
    assert signature_problems([unsigned], CheckpointKeys()) is None
    assert check_length(good, 3) is None and "ends at record 2" in (check_length(good, 2) or "")
    path = tmp_path / "c.jsonl"
    append_checkpoint(path, good)
    append_checkpoint(path, Checkpoint(instance="other", seq=9, hash="b" * 64, ts_ms=2))
    append_checkpoint(path, Checkpoint(instance="i", seq=0, hash="0" * 64, ts_ms=3, reason=REASON_DESTROYED))
    assert [c.reason for c in read_checkpoints(path, "i")] == [REASON_DESTROYED]  # a previous life is forgotten


async def test_orchestrator_loop_anchors_periodically(bb: Blackboard) -> None:
    trail = _trail(bb)
    await trail.append(operator="Coder", action="test")
    anchor = Anchor(bb.instance, CheckpointKeys())
    task = asyncio.create_task(anchor_forever(trail.head_pair, anchor, clock=now_ms, interval_s=0.05))
    try:
        await poll(lambda: [c.seq for c in read_checkpoints(anchor.settings.path, bb.instance)] == [1],
                   what="first periodic checkpoint")
        await trail.append(operator="Coder", action="test")
        await poll(lambda: [c.seq for c in read_checkpoints(anchor.settings.path, bb.instance)] == [1, 2],
                   what="checkpoint after the trail moved")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_export_is_private(bb: Blackboard, cli_env: dict[str, str], tmp_path: Path) -> None:
    await _acts(_trail(bb), 1)
    target = tmp_path / "export.jsonl"
    os.umask(0o022)
    code, _, err = await holt(cli_env, "audit", "export", "--name", bb.instance, "--output", str(target))
    assert code == 0, err
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [json.loads(line)["seq"] for line in target.read_text().splitlines()] == [1, 2]


def test_artefact_type_may_not_hold_control_characters() -> None:
    with pytest.raises(ValueError, match="control characters"):
        parse_tool_output(json.dumps({"artefact_type": "Code\x1b[31m", "summary": "s"}))
    with pytest.raises(ValueError, match="control characters"):
        Artefact(id=(i := new_id()), logical_id=i, version=1, structural_type=StructuralType.STANDARD,
                 type="A\nB", produced_by_role="Coder")
    assert parse_tool_output(json.dumps({"artefact_type": "Code", "summary": "s"})).artefact_type == "Code"


async def test_a_bad_key_file_is_one_line(bb: Blackboard, cli_env: dict[str, str], tmp_path: Path) -> None:
    await _acts(_trail(bb), 1)
    garbage = tmp_path / "not-a-key"
    garbage.write_text("hello\n")
    code, text = await _verify({**cli_env, SIGNING_KEY_ENV: str(garbage)}, bb.instance)
    assert code == 1 and "is not a PEM key" in text and "Traceback" not in text, text
    code, text = await _verify({**cli_env, VERIFY_KEY_ENV: str(tmp_path / "missing.pub")}, bb.instance)
    assert code == 1 and "cannot read" in text and "Traceback" not in text, text
