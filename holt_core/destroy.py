"""Safe destruction of an instance: refuse while it runs, export the audit trail, then delete its keys.

Order matters: the export is written and flushed to disk (with a final ``destroy`` record in it) before the
first key is deleted, so a crash at any point leaves either the whole instance or the archived trail.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from holt_core.audit import GENESIS_HASH, AuditRecord, AuditTrail
from holt_core.audit_anchors import REASON_DESTROYED, open_private
from holt_core.errors import HoltError
from holt_core.identity import human_role
from holt_core.instances import get_record, unregister
from holt_core.keys import Keys
from holt_core.models import now_ms
from holt_core.supervisor import is_holt_process

_DELETE_BATCH = 1000


@dataclass(frozen=True)
class DestroyReport:
    instance: str
    keys_deleted: int
    audit_records: int
    audit_file: Path
    audit_intact: bool
    audit_problem: str


async def destroy_instance(
    redis: Redis,
    instance: str,
    *,
    operator: str,
    audit_file: Path,
    progress: Callable[[int], None] | None = None,
) -> DestroyReport:
    keys = Keys(instance)
    record = await get_record(redis, instance)
    if record is not None and is_holt_process(record.supervisor_pid):
        raise HoltError(
            f"instance '{instance}' is running (supervisor pid {record.supervisor_pid})",
            hint=f"stop it first: holt down --name {instance}",
        )
    trail = AuditTrail(redis, keys)
    verdict = await trail.verify()
    total = 0
    async for _ in redis.scan_iter(match=keys.instance_pattern, count=1000):
        total += 1
    await trail.append(
        operator=human_role(operator),
        action="instance.destroy",
        subject=instance,
        details={"keys": total, "audit_file": str(audit_file), "chain_intact_before": verdict.ok},
    )
    exported = await _export(trail, audit_file)
    deleted = 0
    batch: list[str] = []
    async for key in redis.scan_iter(match=keys.instance_pattern, count=1000):
        batch.append(str(key))
        if len(batch) >= _DELETE_BATCH:
            deleted += int(await redis.unlink(*batch))
            batch.clear()
            if progress:
                progress(deleted)
    if batch:
        deleted += int(await redis.unlink(*batch))
    if progress:
        progress(deleted)
    await unregister(redis, instance)
    # Checkpoints before this one belong to the destroyed instance, not to a new one of the same name.
    await trail.anchor.write(trail.anchor.make(0, GENESIS_HASH, REASON_DESTROYED, now_ms()))
    return DestroyReport(instance, deleted, exported, audit_file, verdict.ok, verdict.reason)


async def _export(trail: AuditTrail, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    fd = open_private(tmp)  # 0600: the trail names people and what they decided
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        async for _, fields in trail.entries():
            try:
                line = AuditRecord.from_fields(fields).model_dump_json()
            except (KeyError, ValueError):
                # Keep even a record that no longer decodes: an archive must not hide tampering.
                line = json.dumps({"undecodable": fields}, sort_keys=True)
            out.write(line + "\n")
            count += 1
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
    return count
