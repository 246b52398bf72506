"""``holt destroy --name X [--force] [--dry-run]`` exactly as milestone M4.3 shows it, and the old alias."""

from __future__ import annotations

import asyncio
import json
import stat
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from holt_core.blackboard import Blackboard, connect_redis
from holt_core.destroy import read_archive
from holt_core.instances import InstanceRecord, get_record, register
from holt_core.models import Artefact, StructuralType, new_id
from tests.clirun import holt


async def _seed(bb: Blackboard, artefacts: int = 2) -> list[str]:
    """Artefacts, a claim with bids, a thread, indexes, HITL and debug keys, the audit trail."""
    ids: list[str] = []
    for _ in range(artefacts):
        ident = new_id()
        await bb.create_artefact(Artefact(id=ident, logical_id=ident, version=1,
                                          structural_type=StructuralType.STANDARD, type="GoalDefined", payload="x",
                                          produced_by_role="user"))
        ids.append(ident)
    r = bb.redis
    for ident in ids:  # Holt's thread ZSETs (one per logical id)
        await r.zadd(bb.keys.thread(ident), {ident: 1})
    await r.hset(bb.keys.claim("c1"), mapping={"id": "c1", "status": "complete"})
    await r.hset(bb.keys.bids("c1"), mapping={"coder": "exclusive"})
    await r.set(bb.keys.hitl_request("q1"), "x")
    await r.sadd(bb.keys.debug_breakpoints, "b1")
    await bb.audit.append(operator="alice", action="test", subject="before")
    return ids


async def _keys(bb: Blackboard, instance: str | None = None) -> list[str]:
    return sorted([str(k) async for k in bb.redis.scan_iter(match=f"holt:{instance or bb.instance}:*")])


async def _register(bb: Blackboard, tmp_path: Path, name: str | None = None, pid: int = 0) -> None:
    await register(bb.redis, InstanceRecord(name=name or bb.instance, run_id="r", workspace_path=str(tmp_path),
                                            started_at="now", supervisor_pid=pid, status="stopped",
                                            log_dir=str(tmp_path / "logs")))


@pytest.fixture
async def other(redis_url: str) -> AsyncIterator[Blackboard]:
    """A second instance whose name starts like the first (``<name>-b``): its keys must never be touched."""
    board = Blackboard(connect_redis(redis_url), f"t-{uuid.uuid4().hex[:10]}")
    try:
        yield board
    finally:
        keys = [k async for k in board.redis.scan_iter(match=f"holt:{board.instance}:*")]
        if keys:
            await board.redis.delete(*keys)
        await board.redis.hdel("holt:instances", board.instance)
        await board.close()


async def test_destroy_with_typed_name_removes_every_key_and_nothing_else(
    bb: Blackboard, other: Blackboard, cli_env: dict[str, str], tmp_path: Path
) -> None:
    ids = await _seed(bb)
    await _register(bb, tmp_path)
    await _seed(other)
    await _register(other, tmp_path)
    # A key of another instance whose name extends this one must survive too.
    neighbour = f"holt:{bb.instance}-b:artefact:x"
    await bb.redis.set(neighbour, "keep")
    # Operators' proofs of human acts are the instance's keys too; another's (and a neighbour's) stay.
    proof = bb.keys.proof("alice", "req-1", "n1")
    kept_proofs = [other.keys.proof("alice", "req-1", "n1"), f"holt-ops:alice:{bb.instance}-b:act:req-1:n1"]
    for key in (proof, *kept_proofs):
        await bb.redis.set(key, '{"act": "approve"}')
    before_other = await _keys(other)
    archive = tmp_path / "archive.jsonl"
    rc, out, err = await holt(cli_env, "destroy", "--name", bb.instance, "--as", "bob", "--archive", str(archive),
                              stdin=f"{bb.instance}\n".encode())
    text = out.decode()
    assert rc == 0, err
    assert f"WARNING: This will permanently delete ALL data for instance '{bb.instance}'" in text
    assert "This includes:\n  - All artefacts and claims\n  - All thread history\n  - All metadata" in text
    assert "Type the instance name to confirm: " in text
    assert f"Destroying instance '{bb.instance}'..." in text
    # 2 artefacts, 1 claim (its :bids hash is metadata), 2 threads (one per logical id).
    for line in ("✓ Removed 2 artefacts", "✓ Removed 1 claims", "✓ Removed 2 threads", "✓ Removed metadata"):
        assert line in text
    assert text.rstrip().endswith(f"Instance '{bb.instance}' destroyed successfully")
    assert str(archive) in text
    assert await _keys(bb) == []
    assert await get_record(bb.redis, bb.instance) is None
    assert await _keys(other) == before_other
    assert await get_record(other.redis, other.instance) is not None
    assert await bb.redis.get(neighbour) == "keep"
    assert not await bb.redis.exists(proof)
    assert await bb.redis.exists(*kept_proofs) == 2
    await bb.redis.delete(neighbour, *kept_proofs)
    # The archive: private, header first, the whole audit trail ending with the destroy record, every artefact.
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    lines = read_archive(archive)
    assert lines[0]["kind"] == "header" and lines[0]["operator"] == "bob"
    audit = [line["record"] for line in lines if line["kind"] == "audit"]
    assert [r["action"] for r in audit][-2:] == ["test", "instance.destroy"]
    assert audit[-1]["operator"] == "human:bob" and audit[-1]["prev_hash"] == audit[-2]["hash"]
    assert audit[-1]["details"]["artefacts"] == 2 and audit[-1]["ts_ms"] > 0
    assert sorted(line["id"] for line in lines if line["kind"] == "artefact") == sorted(ids)
    archived_proofs = [(line["key"], line["value"]) for line in lines if line["kind"] == "proof"]
    assert archived_proofs == [(proof, '{"act": "approve"}')]
    # Logged on disk, in the instance's log folder, with time and operator.
    logged = json.loads((tmp_path / "logs" / "destroy.log").read_text().splitlines()[-1])
    assert logged["event_type"] == "instance_destroyed" and logged["operator"] == "bob"
    assert logged["instance"] == bb.instance and logged["timestamp"].endswith("Z")


async def test_wrong_confirmation_deletes_nothing(bb: Blackboard, cli_env: dict[str, str], tmp_path: Path) -> None:
    await _seed(bb)
    await _register(bb, tmp_path)
    before = await _keys(bb)
    for typed in (b"not-it\n", b""):
        rc, _, err = await holt(cli_env, "destroy", "--name", bb.instance, "--archive", str(tmp_path / "a.jsonl"),
                                stdin=typed)
        assert rc == 1 and "nothing was deleted" in err
    assert await _keys(bb) == before
    assert await get_record(bb.redis, bb.instance) is not None
    assert not (tmp_path / "a.jsonl").exists()


async def test_force_skips_the_prompt(bb: Blackboard, cli_env: dict[str, str], tmp_path: Path) -> None:
    await _seed(bb)
    await _register(bb, tmp_path)
    archive = tmp_path / "a.jsonl"
    rc, out, err = await holt(cli_env, "destroy", "--name", bb.instance, "--force", "--archive", str(archive))
    assert rc == 0, err
    assert out.decode() == f"Instance '{bb.instance}' destroyed successfully\n"
    assert str(archive) in err.replace("\n", "")
    assert await _keys(bb) == [] and await get_record(bb.redis, bb.instance) is None


async def test_old_form_name_and_yes_is_an_alias(bb: Blackboard, cli_env: dict[str, str], tmp_path: Path) -> None:
    await _seed(bb)
    rc, out, err = await holt(cli_env, "destroy", bb.instance, "--yes", "--audit-file", str(tmp_path / "a.jsonl"))
    assert rc == 0, err
    assert "destroyed successfully" in out.decode()
    assert await _keys(bb) == []


async def test_dry_run_lists_and_deletes_nothing(bb: Blackboard, cli_env: dict[str, str], tmp_path: Path) -> None:
    await _seed(bb)
    await _register(bb, tmp_path)
    before = await _keys(bb)
    rc, out, err = await holt(cli_env, "destroy", "--name", bb.instance, "--dry-run", "--archive",
                              str(tmp_path / "a.jsonl"))
    text = out.decode()
    assert rc == 0, err
    assert "nothing will be deleted" in text
    assert "  2 artefacts\n  1 claims\n  2 threads\n" in text
    for key in before:
        assert f"  {key}\n" in text
    assert "holt:instances" in text
    assert await _keys(bb) == before
    assert await get_record(bb.redis, bb.instance) is not None
    assert not (tmp_path / "a.jsonl").exists()


async def test_a_wrong_typed_proof_key_is_archived_as_such_and_removed(
    bb: Blackboard, cli_env: dict[str, str], tmp_path: Path
) -> None:
    # A foreign client wrote a hash where a proof (a string) belongs: destroy neither fails nor leaves it behind.
    await _seed(bb)
    await _register(bb, tmp_path)
    odd = bb.keys.proof("mallory", "req-9", "n9")
    await bb.redis.hset(odd, mapping={"act": "approve"})
    archive = tmp_path / "archive.jsonl"
    rc, _, err = await holt(cli_env, "destroy", "--name", bb.instance, "--force", "--archive", str(archive))
    assert rc == 0, err
    assert "Traceback" not in str(err)
    assert not await bb.redis.exists(odd)
    assert [(line["key"], line["value"]) for line in read_archive(archive) if line["kind"] == "proof"] == [(odd, None)]


async def test_not_found(cli_env: dict[str, str], instance: str) -> None:
    rc, _, err = await holt(cli_env, "destroy", "--name", instance, "--force")
    assert rc == 1
    assert err.strip() == f"Error: Instance '{instance}' not found"


async def test_refuses_a_running_instance(bb: Blackboard, cli_env: dict[str, str], tmp_path: Path) -> None:
    await _seed(bb)
    # A live process whose command line names holt stands in for the instance's supervisor.
    stand_in = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(60)", "holt-supervisor"
    )
    try:
        await _register(bb, tmp_path, pid=stand_in.pid)
        before = await _keys(bb)
        rc, _, err = await holt(cli_env, "destroy", "--name", bb.instance, "--force", "--archive",
                                str(tmp_path / "a.jsonl"))
    finally:
        stand_in.kill()
        await stand_in.wait()
    assert rc == 1
    assert err.splitlines() == [f"Error: Cannot destroy instance '{bb.instance}' - instance is still running",
                                f"Run 'holt down --name {bb.instance}' first"]
    assert await _keys(bb) == before
    assert not (tmp_path / "a.jsonl").exists()


async def test_refuses_while_the_orchestrator_lock_is_held(
    bb: Blackboard, cli_env: dict[str, str], tmp_path: Path
) -> None:
    await _seed(bb)
    await bb.redis.set(bb.keys.lock, "orchestrator:1", ex=60)
    rc, _, err = await holt(cli_env, "destroy", "--name", bb.instance, "--force", "--archive",
                            str(tmp_path / "a.jsonl"))
    assert rc == 1 and "instance is still running" in err
    assert await bb.redis.exists(bb.keys.audit) == 1
