"""``holt destroy``: archive the audit trail first, refuse running instances, delete every key."""

from __future__ import annotations

import asyncio
import json
import stat
import sys
from pathlib import Path

from holt_core.blackboard import Blackboard
from holt_core.instances import InstanceRecord, get_record, register
from holt_core.models import Artefact, StructuralType, new_id
from tests.clirun import holt


async def _seed(bb: Blackboard) -> None:
    ident = new_id()
    await bb.create_artefact(Artefact(id=ident, logical_id=ident, version=1, structural_type=StructuralType.STANDARD,
                                      type="GoalDefined", payload="x", produced_by_role="user"))
    await bb.audit.append(operator="alice", action="test", subject="before")


async def test_destroy_archives_then_deletes(bb: Blackboard, cli_env: dict[str, str], tmp_path: Path) -> None:
    await _seed(bb)
    await register(bb.redis, InstanceRecord(name=bb.instance, run_id="r", workspace_path=str(tmp_path),
                                            started_at="now", supervisor_pid=0, status="stopped"))
    archive = tmp_path / "audit.jsonl"
    rc, out, err = await holt(cli_env, "destroy", bb.instance, "--yes", "--as", "bob", "--audit-file", str(archive))
    assert rc == 0, err
    assert "destroyed" in out.decode()
    records = [json.loads(line) for line in archive.read_text().splitlines()]
    assert [r["action"] for r in records] == ["test", "instance.destroy"]
    assert records[-1]["operator"] == "human:bob" and records[-1]["prev_hash"] == records[0]["hash"]
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600  # the trail names people: not world-readable
    assert [k async for k in bb.redis.scan_iter(match=f"holt:{bb.instance}:*")] == []
    assert await get_record(bb.redis, bb.instance) is None


async def test_destroy_refuses_a_running_instance(bb: Blackboard, cli_env: dict[str, str], tmp_path: Path) -> None:
    await _seed(bb)
    # A live process whose command line names holt stands in for the instance's supervisor.
    stand_in = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(60)", "holt-supervisor"
    )
    try:
        await register(bb.redis, InstanceRecord(name=bb.instance, run_id="r", workspace_path=str(tmp_path),
                                                started_at="now", supervisor_pid=stand_in.pid))
        rc, _, err = await holt(cli_env, "destroy", bb.instance, "--yes", "--audit-file", str(tmp_path / "a.jsonl"))
    finally:
        stand_in.kill()
        await stand_in.wait()
    assert rc == 1 and "is running" in err
    assert await bb.redis.exists(bb.keys.audit) == 1
    assert not (tmp_path / "a.jsonl").exists()


async def test_destroy_needs_confirmation(bb: Blackboard, cli_env: dict[str, str], tmp_path: Path) -> None:
    await _seed(bb)
    rc, _, err = await holt(cli_env, "destroy", bb.instance, "--audit-file", str(tmp_path / "a.jsonl"))
    assert rc == 1 and "--yes" in err
    assert await bb.redis.exists(bb.keys.audit) == 1
