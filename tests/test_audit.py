"""The audit trail: a hash chain that detects edits, insertions and removals, with atomic appends."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from holt_core.audit import ALG_HMAC, AuditRecord, AuditTrail
from holt_core.blackboard import Blackboard
from holt_core.transaction import Tx
from tests.clirun import holt


async def _fill(bb: Blackboard, n: int) -> list[AuditRecord]:
    return [await bb.audit.append(operator="alice", action="test", subject=f"s{i}", details={"i": i}) for i in range(n)]


async def _rewrite(bb: Blackboard, entries: list[dict[str, str]]) -> None:
    """Replace the stream with these entries (fresh ids, as a forger rebuilding it would)."""
    await bb.redis.delete(bb.keys.audit)
    for n, fields in enumerate(entries, start=1):
        await bb.redis.xadd(bb.keys.audit, fields, id=f"1-{n}")


async def _fields(bb: Blackboard) -> list[dict[str, str]]:
    return [fields async for _, fields in bb.audit.entries()]


async def test_clean_trail_verifies(bb: Blackboard) -> None:
    records = await _fill(bb, 5)
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert records[1].prev_hash == records[0].hash
    result = await bb.audit.verify()
    assert result.ok and result.records == 5


async def test_edited_record_is_detected(bb: Blackboard) -> None:
    await _fill(bb, 5)
    entries = await _fields(bb)
    entries[2]["operator"] = "mallory"
    await _rewrite(bb, entries)
    result = await bb.audit.verify()
    assert not result.ok and result.broken_seq == 3 and "edited" in result.reason


async def test_inserted_record_is_detected(bb: Blackboard) -> None:
    await _fill(bb, 4)
    entries = await _fields(bb)
    entries.insert(2, dict(entries[1], subject="forged"))
    await _rewrite(bb, entries)
    result = await bb.audit.verify()
    assert not result.ok and result.broken_seq == 2 and "inserted or removed" in result.reason


async def test_deleted_records_are_detected(bb: Blackboard) -> None:
    await _fill(bb, 5)
    entries = [e async for e in bb.audit.entries()]
    await bb.redis.xdel(bb.keys.audit, entries[2][0])
    result = await bb.audit.verify()
    assert not result.ok and result.broken_seq == 4 and "inserted or removed" in result.reason


async def test_removing_the_newest_record_is_detected(bb: Blackboard) -> None:
    await _fill(bb, 3)
    entries = [e async for e in bb.audit.entries()]
    await bb.redis.xdel(bb.keys.audit, entries[-1][0])
    result = await bb.audit.verify()
    assert not result.ok and "removed" in result.reason


async def test_concurrent_appends_form_one_chain(bb: Blackboard) -> None:
    async def writer(w: int) -> None:
        for i in range(25):
            await bb.audit.append(operator=f"op{w}", action="test", details={"i": i})

    await asyncio.gather(*(writer(w) for w in range(8)))
    records = await bb.audit.records()
    assert [r.seq for r in records] == list(range(1, 201))
    assert (await bb.audit.verify()).ok


async def test_caller_guard_failure_writes_nothing(bb: Blackboard) -> None:
    await bb.redis.set("holt:" + bb.instance + ":x", "taken")
    tx = Tx().require_absent("holt:" + bb.instance + ":x").set("holt:" + bb.instance + ":y", "1")
    result, record = await bb.audit.commit(tx, operator="alice", action="test")
    assert not result.ok and result.failed_guard == 0 and record is None
    assert await bb.redis.xlen(bb.keys.audit) == 0
    assert await bb.redis.get("holt:" + bb.instance + ":y") is None


async def test_hmac_needs_the_key_to_verify(bb: Blackboard) -> None:
    signed = AuditTrail(bb.redis, bb.keys, key=b"secret")
    record = await signed.append(operator="alice", action="test")
    assert record.alg == ALG_HMAC
    assert (await signed.verify()).ok
    unkeyed = AuditTrail(bb.redis, bb.keys, key=b"")
    unkeyed.key = None
    assert not (await unkeyed.verify()).ok
    wrong = AuditTrail(bb.redis, bb.keys, key=b"other")
    assert not (await wrong.verify()).ok


async def test_cli_verify_export_and_show(bb: Blackboard, cli_env: dict[str, str], tmp_path: Path) -> None:
    await _fill(bb, 3)
    rc, out, err = await holt(cli_env, "audit", "verify", "--name", bb.instance)
    assert rc == 0, err
    assert "3 records" in out.decode()
    rc, out, _ = await holt(cli_env, "audit", "--name", bb.instance, "--json", "--last", "2")
    assert [json.loads(line)["seq"] for line in out.decode().splitlines()] == [2, 3]
    target = tmp_path / "audit.jsonl"
    rc, _, err = await holt(cli_env, "audit", "export", "--name", bb.instance, "--output", str(target))
    assert rc == 0, err
    assert [json.loads(line)["subject"] for line in target.read_text().splitlines()] == ["s0", "s1", "s2"]
    entries = await _fields(bb)
    entries[1]["details"] = '{"i":99}'
    await _rewrite(bb, entries)
    rc, _, err = await holt(cli_env, "audit", "verify", "--name", bb.instance)
    assert rc == 1 and "broken at record 2" in err
