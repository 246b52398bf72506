"""Safe destruction of an instance: refuse while it runs, archive it, then delete its keys (milestone M4.3).

Order matters: the archive (every audit record, with a final ``instance.destroy`` record, and every artefact) is
written, flushed and renamed into place before the first key is deleted, so a crash at any point leaves either the
whole instance or the complete archive. Planning (what would go) is separate from applying, so ``--dry-run``
reads exactly what a real run would delete.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from holt_core.audit import GENESIS_HASH, AuditRecord, AuditTrail
from holt_core.audit_anchors import REASON_DESTROYED
from holt_core.identity import human_role
from holt_core.instances import InstanceRecord, get_record, unregister
from holt_core.keys import Keys
from holt_core.models import now_ms
from holt_core.supervisor import is_holt_process

_DELETE_BATCH = 1000
ARCHIVE_FORMAT = 1


class InstanceRunning(Exception):
    """The instance has a live supervisor or an orchestrator lock: it must be stopped first."""


class InstanceNotFound(Exception):
    """No registry entry and no key of the instance."""


@dataclass
class DestroyPlan:
    """What a destroy would remove, by the kinds M4.3 reports."""

    instance: str
    artefacts: list[str] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)
    metadata: list[str] = field(default_factory=list)
    # The operators' proofs of human acts on the instance (holt-ops:<operator>:<instance>:act:...): counted as
    # metadata, archived with their values (they are the evidence behind the audit trail's human acts).
    proofs: list[str] = field(default_factory=list)
    registered: bool = False

    @property
    def keys(self) -> list[str]:
        return [*self.artefacts, *self.claims, *self.threads, *self.metadata]


@dataclass(frozen=True)
class DestroyReport:
    plan: DestroyPlan
    keys_deleted: int
    audit_records: int
    artefacts_archived: int
    archive_file: Path
    audit_intact: bool
    audit_problem: str


def classify(keys: Keys, key: str) -> str:
    """``artefacts``, ``claims``, ``threads`` or ``metadata`` (bids, indexes, locks, HITL, debug, audit...)."""
    rest = key[len(keys.prefix):]
    kind, _, tail = rest.partition(":")
    if kind == "artefact" and tail:
        return "artefacts"
    if kind == "claim" and tail and ":" not in tail:
        return "claims"
    if kind == "thread" and tail:
        return "threads"
    return "metadata"


async def plan_destroy(redis: Redis, instance: str) -> DestroyPlan:
    """Every key of the instance (and nothing of another: the pattern ends in the instance's own ``:``)."""
    keys = Keys(instance)
    plan = DestroyPlan(instance, registered=await get_record(redis, instance) is not None)
    async for raw in redis.scan_iter(match=keys.instance_pattern, count=1000):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        if not key.startswith(keys.prefix):
            continue
        getattr(plan, classify(keys, key)).append(key)
    plan.proofs = [key async for key in _proof_keys(redis, keys)]
    plan.metadata.extend(plan.proofs)
    for bucket in (plan.artefacts, plan.claims, plan.threads, plan.metadata, plan.proofs):
        bucket.sort()
    if not plan.registered and not plan.keys:
        raise InstanceNotFound(instance)
    return plan


async def _instance_keys(redis: Redis, keys: Keys) -> AsyncIterator[str]:
    """Every key of the instance as it is now: its ``holt:NAME:*`` keys, then the operators' proofs on it."""
    async for raw in redis.scan_iter(match=keys.instance_pattern, count=1000):
        yield raw.decode() if isinstance(raw, bytes) else str(raw)
    async for key in _proof_keys(redis, keys):
        yield key


async def _proof_keys(redis: Redis, keys: Keys) -> AsyncIterator[str]:
    async for raw in redis.scan_iter(match=keys.proof_pattern, count=1000):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        if keys.is_proof_key(key):
            yield key


async def running_reason(redis: Redis, instance: str) -> str | None:
    """Why the instance counts as running, or None: a live supervisor, or an orchestrator lock still held."""
    record = await get_record(redis, instance)
    if record is not None and is_holt_process(record.supervisor_pid):
        return f"supervisor pid {record.supervisor_pid}"
    if record is not None and record.status == "running" and is_holt_process(record.orchestrator_pid):
        return f"orchestrator pid {record.orchestrator_pid}"
    if await redis.exists(Keys(instance).lock):
        return "the orchestrator lock is held"
    return None


async def destroy_instance(
    redis: Redis,
    instance: str,
    *,
    operator: str,
    archive_file: Path,
    progress: Callable[[int], None] | None = None,
) -> DestroyReport:
    """Archive, then delete every key of a stopped instance and its registry entry."""
    reason = await running_reason(redis, instance)
    if reason is not None:
        raise InstanceRunning(reason)
    plan = await plan_destroy(redis, instance)
    keys = Keys(instance)
    trail = AuditTrail(redis, keys)
    verdict = await trail.verify()
    await trail.append(
        operator=human_role(operator),
        action="instance.destroy",
        subject=instance,
        details={
            "keys": len(plan.keys) + 2,  # the audit stream and head exist now even if they did not before
            "artefacts": len(plan.artefacts),
            "claims": len(plan.claims),
            "threads": len(plan.threads),
            "archive_file": str(archive_file),
            "chain_intact_before": verdict.ok,
        },
    )
    audit_count, artefact_count = await _archive(redis, trail, plan, operator, archive_file)
    # Delete what the plan found, then sweep again: keys written since (the audit record just added) go too.
    deleted = 0
    batch: list[str] = []
    async for key in _instance_keys(redis, keys):
        batch.append(key)
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
    return DestroyReport(plan, deleted, audit_count, artefact_count, archive_file, verdict.ok, verdict.reason)


def _open_private(path: Path) -> Any:
    """A new file only its owner can read (0600), whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8")


async def _archive(redis: Redis, trail: AuditTrail, plan: DestroyPlan, operator: str, path: Path) -> tuple[int, int]:
    """One JSON object per line: a header, every audit record, every artefact hash as stored, then every proof."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    audit_count = artefact_count = 0
    with _open_private(tmp) as out:
        header = {"kind": "header", "format": ARCHIVE_FORMAT, "instance": plan.instance, "operator": operator,
                  "archived_at_ms": int(time.time() * 1000)}
        out.write(json.dumps(header, sort_keys=True) + "\n")
        async for _, fields in trail.entries():
            try:
                record: Any = json.loads(AuditRecord.from_fields(fields).model_dump_json())
            except (KeyError, ValueError):
                # Keep even a record that no longer decodes: an archive must not hide tampering.
                record = {"undecodable": fields}
            out.write(json.dumps({"kind": "audit", "record": record}, sort_keys=True) + "\n")
            audit_count += 1
        keys = Keys(plan.instance)
        for key in plan.artefacts:
            if await redis.type(key) not in ("hash", b"hash"):
                continue
            raw = await redis.hgetall(key)
            fields = {_text(k): _text(v) for k, v in raw.items()}
            line = {"kind": "artefact", "id": keys.id_from_artefact_key(key), "fields": fields}
            out.write(json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n")
            artefact_count += 1
        for key in plan.proofs:
            value = await redis.get(key) if await redis.type(key) in ("string", b"string") else None
            proof = {"kind": "proof", "key": key, "value": None if value is None else _text(value)}
            out.write(json.dumps(proof, sort_keys=True, ensure_ascii=False) + "\n")
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
    return audit_count, artefact_count


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def read_archive(path: Path) -> list[dict[str, Any]]:
    """The lines of an archive (tests and recovery scripts)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def log_destruction(record: InstanceRecord | None, report: DestroyReport, operator: str, fallback_dir: Path) -> Path:
    """Append one JSON line to ``destroy.log`` in the instance's log folder (kept on disk), else next to the
    archive: when, who, what was removed and where the archive is."""
    folder = Path(record.log_dir) if record is not None and record.log_dir else fallback_dir
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "destroy.log"
    line = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "level": "warning",
        "component": "cli",
        "instance": report.plan.instance,
        "event_type": "instance_destroyed",
        "operator": operator,
        "artefacts": len(report.plan.artefacts),
        "claims": len(report.plan.claims),
        "threads": len(report.plan.threads),
        "keys_deleted": report.keys_deleted,
        "archive_file": str(report.archive_file),
    }
    with target.open("a", encoding="utf-8") as out:
        out.write(json.dumps(line, sort_keys=True) + "\n")
    return target
