"""The tamper-evident audit trail: a hash-chained Redis Stream, appended in the same atomic step as the change.

Every record carries ``seq`` (1, 2, 3, ...), ``prev_hash`` and ``hash`` = sha256 (or HMAC-SHA256 with
``HOLT_AUDIT_KEY``) over the canonical JSON of the record without ``hash``. ``holt:{inst}:audit:head`` holds
``<seq>:<hash>`` of the newest record; an append is guarded on it, so two writers can never fork the chain,
and removing the newest records is detectable too.

Callers hand ``AuditTrail.commit`` their own guarded ``Tx``: it appends the record, runs everything as one
Lua script and retries only when another record won the race for the head (the caller's own guards are
never retried: their failure is returned).

Actors are named in one form: ``human:<operator>`` for a person, ``system:<what>`` for holt itself and the
bare role for an agent (roles are letters, digits and hyphens, so the three never collide). After a person's
act the trail is anchored outside Redis (``holt_core.audit_anchors``); ``verify`` checks it against those
checkpoints.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from holt_core.audit_anchors import (
    AUDIT_KEY_ENV,
    REASON_HUMAN,
    Anchor,
    AnchorKeyError,
    Checkpoint,
    CheckpointFileError,
    CheckpointKeys,
    by_seq,
    check_length,
    check_record,
    newest,
    read_checkpoints,
    signature_problems,
)
from holt_core.audit_witness import PersonRecord, judge, parse_witnessed_from, person_record
from holt_core.identity import HUMAN_PREFIX, operator_of_role
from holt_core.keys import Keys
from holt_core.models import now_ms
from holt_core.redis_wire import CommandWire
from holt_core.transaction import Tx, TxResult, TxRunner

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["AUDIT_KEY_ENV", "AuditRecord", "AuditTrail", "VerifyResult"]
GENESIS_HASH = "0" * 64
ALG_SHA256 = "sha256"
ALG_HMAC = "hmac-sha256"
_MAX_RETRIES = 200


class AuditRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int
    ts_ms: int
    operator: str
    action: str
    subject: str = ""
    details: dict[str, Any] = {}
    prev_hash: str
    alg: str = ALG_SHA256
    hash: str = ""

    def canonical(self) -> bytes:
        body = self.model_dump(exclude={"hash"})
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def to_fields(self) -> dict[str, str]:
        return {
            "seq": str(self.seq),
            "ts_ms": str(self.ts_ms),
            "operator": self.operator,
            "action": self.action,
            "subject": self.subject,
            "details": json.dumps(self.details, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
            "prev_hash": self.prev_hash,
            "alg": self.alg,
            "hash": self.hash,
        }

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> AuditRecord:
        details = json.loads(fields.get("details", "{}"))
        if not isinstance(details, dict):
            raise ValueError("details is not an object")
        return cls(
            seq=int(fields["seq"]),
            ts_ms=int(fields["ts_ms"]),
            operator=fields["operator"],
            action=fields["action"],
            subject=fields.get("subject", ""),
            details=details,
            prev_hash=fields["prev_hash"],
            alg=fields.get("alg", ALG_SHA256),
            hash=fields.get("hash", ""),
        )


@dataclass(frozen=True)
class AuditHead:
    seq: int
    hash: str

    @property
    def value(self) -> str | None:
        return None if self.seq == 0 else f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, raw: str | None) -> AuditHead:
        if not raw:
            return cls(0, GENESIS_HASH)
        seq, _, digest = raw.partition(":")
        return cls(int(seq), digest)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    records: int
    alg: str
    broken_seq: int | None = None
    broken_entry: str | None = None
    reason: str = ""
    checkpoints: int = 0
    checkpoint_seq: int | None = None
    checkpoint_ms: int | None = None
    # Records naming a person without a witness that predate witnessing on this instance (or all of them, when
    # no orchestrator has started witnessing yet): they cannot be told apart from forged ones, so they are counted.
    unwitnessed: int = 0


def audit_key_from_env() -> bytes | None:
    raw = os.environ.get(AUDIT_KEY_ENV, "")
    return raw.encode() if raw else None


def _digest(record: AuditRecord, key: bytes | None) -> str:
    if record.alg == ALG_HMAC:
        if key is None:
            raise ValueError(f"record {record.seq} is HMAC-signed: set {AUDIT_KEY_ENV} to verify it")
        return hmac.new(key, record.canonical(), hashlib.sha256).hexdigest()
    return hashlib.sha256(record.canonical()).hexdigest()


class AuditTrail:
    """Append, read, follow and verify one instance's audit stream."""

    def __init__(self, redis: Redis, keys: Keys, *, key: bytes | None = None, runner: TxRunner | None = None,
                 anchor: Anchor | None = None) -> None:
        self.redis = redis
        # redis-py's stream replies are typed as unions of every shape; we read them as the decoded lists they are.
        self._r: Any = redis
        self.keys = keys
        self.key = key if key is not None else audit_key_from_env()
        self._runner = runner or TxRunner(CommandWire(redis))
        self._anchor = anchor

    @property
    def anchor(self) -> Anchor:
        """Where checkpoints go (resolved from the environment on first use)."""
        if self._anchor is None:
            self._anchor = Anchor(self.keys.instance, CheckpointKeys.from_env(self.key))
        return self._anchor

    async def checkpoint(self, reason: str) -> Checkpoint | None:
        """Anchor the trail as it is now (None for an empty trail: there is nothing to anchor)."""
        head = await self.head()
        if head.seq == 0:
            return None
        checkpoint = self.anchor.make(head.seq, head.hash, reason, now_ms())
        await self.anchor.write(checkpoint)
        return checkpoint

    async def start_witnessing(self) -> None:
        """From now on every record naming a person must have its witness (once per instance; the orchestrator
        calls it on start). Records already in the trail stay as they are: on an upgraded instance they may
        predate witnesses."""
        head = await self.head()
        await self._r.set(self.keys.audit_witnessed_from, str(head.seq), nx=True)

    async def head_pair(self) -> tuple[int, str]:
        head = await self.head()
        return head.seq, head.hash

    async def head(self) -> AuditHead:
        return AuditHead.parse(await self._r.get(self.keys.audit_head))

    def seal(self, head: AuditHead, *, operator: str, action: str, subject: str = "",
             details: dict[str, Any] | None = None, ts_ms: int | None = None) -> AuditRecord:
        draft = AuditRecord(
            seq=head.seq + 1,
            ts_ms=ts_ms if ts_ms is not None else now_ms(),
            operator=operator,
            action=action,
            subject=subject,
            details=details or {},
            prev_hash=head.hash,
            alg=ALG_HMAC if self.key else ALG_SHA256,
        )
        return draft.model_copy(update={"hash": _digest(draft, self.key)})

    async def commit(
        self,
        tx: Tx | None,
        *,
        operator: str,
        action: str,
        subject: str = "",
        details: dict[str, Any] | None = None,
    ) -> tuple[TxResult, AuditRecord | None]:
        """Run ``tx`` and append one audit record, atomically. Returns the caller's failed guard, if any."""
        base = tx or Tx()
        for _ in range(_MAX_RETRIES):
            head = await self.head()
            record = self.seal(head, operator=operator, action=action, subject=subject, details=details)
            attempt = Tx().extend(base)
            guard_index = len(attempt.guards)
            attempt.require_value(self.keys.audit_head, head.value)
            person = operator_of_role(record.operator)
            if person is not None:
                # Redis refuses the whole append when this key is not the caller's to write (an agent's user):
                # only that person's credentials (or the admin's) can put a record in their name.
                attempt.set(self.keys.audit_witness(person, record.seq), record.hash)
            attempt.xadd(self.keys.audit, record.to_fields())
            attempt.set(self.keys.audit_head, f"{record.seq}:{record.hash}")
            result = await self._runner.run(attempt)
            if result.ok:
                if record.operator.startswith(HUMAN_PREFIX):  # a person's act is anchored outside Redis at once
                    await self._anchor_act(record)
                return result, record
            if result.failed_guard != guard_index:
                return result, None
        raise RuntimeError("audit head contended beyond retry limit")

    async def _anchor_act(self, record: AuditRecord) -> None:
        try:
            await self.anchor.write(self.anchor.make(record.seq, record.hash, REASON_HUMAN, record.ts_ms))
        except AnchorKeyError as exc:  # the act itself is committed: say so, and what is missing
            raise AnchorKeyError(f"the act was recorded (audit record {record.seq}) but no checkpoint was written: "
                                 f"{exc.message}", hint=exc.hint) from None

    async def append(self, *, operator: str, action: str, subject: str = "",
                     details: dict[str, Any] | None = None) -> AuditRecord:
        _, record = await self.commit(None, operator=operator, action=action, subject=subject, details=details)
        assert record is not None  # no caller guards, so only success returns
        return record

    async def entries(self, *, start: str = "-", page: int = 1000) -> AsyncIterator[tuple[str, dict[str, str]]]:
        """Raw stream entries (id, fields), oldest first, paged."""
        cursor = start
        exclusive = False
        while True:
            batch = await self._r.xrange(self.keys.audit, min=f"({cursor}" if exclusive else cursor, count=page)
            if not batch:
                return
            for entry_id, fields in batch:
                yield str(entry_id), {str(k): str(v) for k, v in fields.items()}
            cursor, exclusive = str(batch[-1][0]), True
            if len(batch) < page:
                return

    async def records(self, *, last: int | None = None) -> list[AuditRecord]:
        """Decoded records (malformed entries are skipped here; ``verify`` reports them)."""
        if last is not None:
            raw = list(reversed(await self._r.xrevrange(self.keys.audit, count=last)))
            pairs = [(str(i), {str(k): str(v) for k, v in f.items()}) for i, f in raw]
        else:
            pairs = [p async for p in self.entries()]
        out: list[AuditRecord] = []
        for _, fields in pairs:
            try:
                out.append(AuditRecord.from_fields(fields))
            except (KeyError, ValueError, ValidationError):
                continue
        return out

    async def follow(self, *, after: str = "$", block_ms: int = 1000) -> AsyncIterator[tuple[str, AuditRecord]]:
        """New records as they are appended (never returns on its own)."""
        cursor = after
        if cursor == "$":
            newest = await self._r.xrevrange(self.keys.audit, count=1)
            cursor = str(newest[0][0]) if newest else "0-0"
        while True:
            reply = await self._r.xread({self.keys.audit: cursor}, block=block_ms, count=500)
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    cursor = str(entry_id)
                    try:
                        yield cursor, AuditRecord.from_fields({str(k): str(v) for k, v in fields.items()})
                    except (KeyError, ValueError, ValidationError):
                        continue

    async def verify(self, checkpoints: list[Checkpoint] | None = None) -> VerifyResult:
        """Walk the whole chain against the checkpoints; the first thing that does not fit is reported.

        ``checkpoints`` None: this instance's checkpoint file (``AnchorSettings``); pass a list to check an
        external copy.
        """
        alg = ALG_HMAC if self.key else ALG_SHA256
        if checkpoints is None:
            try:
                checkpoints = self.anchor_checkpoints()
            except (CheckpointFileError, AnchorKeyError) as exc:
                return VerifyResult(False, 0, alg, None, None, str(exc))
        latest = newest(checkpoints)
        anchored = {"checkpoints": len(checkpoints), "checkpoint_seq": latest.seq if latest else None,
                    "checkpoint_ms": latest.ts_ms if latest else None}
        result = await self._walk(alg, checkpoints)
        return VerifyResult(**{**result.__dict__, **anchored})

    def anchor_checkpoints(self) -> list[Checkpoint]:
        return read_checkpoints(self.anchor.settings.path, self.keys.instance)

    async def _walk(self, alg: str, checkpoints: list[Checkpoint]) -> VerifyResult:
        problem = signature_problems(checkpoints, self.anchor.keys)
        if problem:
            return VerifyResult(False, 0, alg, None, None, problem)
        expected_at = by_seq(checkpoints)
        expected = AuditHead(0, GENESIS_HASH)
        seen_hmac = False
        count = 0
        people: list[PersonRecord] = []
        async for entry_id, fields in self.entries():
            count += 1
            try:
                record = AuditRecord.from_fields(fields)
            except (KeyError, ValueError, ValidationError) as exc:
                return VerifyResult(False, count, alg, expected.seq + 1, entry_id, f"record does not decode: {exc}")
            if record.seq != expected.seq + 1:
                return VerifyResult(False, count, alg, record.seq, entry_id,
                                    f"sequence {record.seq} follows {expected.seq}: a record was inserted or removed")
            if record.prev_hash != expected.hash:
                return VerifyResult(False, count, alg, record.seq, entry_id,
                                    "prev_hash does not match the previous record: the chain was altered")
            if record.alg == ALG_HMAC:
                seen_hmac = True
            elif self.key is not None:
                return VerifyResult(False, count, alg, record.seq, entry_id,
                                    f"record {record.seq} is unsigned while {AUDIT_KEY_ENV} is set: "
                                    "the chain was recomputed without the key")
            elif seen_hmac:
                return VerifyResult(False, count, alg, record.seq, entry_id,
                                    "unsigned record after signed ones: the chain was rewritten")
            try:
                digest = _digest(record, self.key)
            except ValueError as exc:
                return VerifyResult(False, count, alg, record.seq, entry_id, str(exc))
            if not hmac.compare_digest(digest, record.hash):
                return VerifyResult(False, count, alg, record.seq, entry_id,
                                    "hash does not match the record's content: the record was edited")
            mismatch = check_record(expected_at, record.seq, record.hash)
            if mismatch:
                return VerifyResult(False, count, alg, record.seq, entry_id, mismatch)
            person = person_record(record.seq, entry_id, record.operator, record.hash)
            if person is not None:
                people.append(person)
            expected = AuditHead(record.seq, record.hash)
        head = await self.head()
        if head != expected:
            return VerifyResult(False, count, alg, expected.seq + 1, None,
                                f"head says record {head.seq} is the newest, the stream ends at {expected.seq}: "
                                "records were removed")
        short = check_length(newest(checkpoints), expected.seq)
        if short:
            return VerifyResult(False, count, alg, expected.seq + 1, None, short)
        verdict = judge(people, await self._witnesses(people),
                        parse_witnessed_from(await self._r.get(self.keys.audit_witnessed_from)))
        if verdict.forged is not None:
            return VerifyResult(False, count, alg, verdict.forged.seq, verdict.forged.entry_id, verdict.reason,
                                unwitnessed=verdict.unchecked)
        return VerifyResult(True, count, alg, unwitnessed=verdict.unchecked)

    async def _witnesses(self, people: list[PersonRecord], page: int = 500) -> dict[int, str | None]:
        found: dict[int, str | None] = {}
        named = [p for p in people if p.nameable]
        for start in range(0, len(named), page):
            chunk = named[start:start + page]
            # Same slot on a cluster: a witness key carries the instance's name, whose hash tag every key shares.
            values = await self._r.mget([self.keys.audit_witness(p.operator, p.seq) for p in chunk])
            found.update({p.seq: value for p, value in zip(chunk, values, strict=True)})
        return found
