"""Audit anchors: signed checkpoints of the audit trail, kept outside Redis.

A checkpoint records (instance, count of records, head hash, time), signed with HMAC-SHA256 under
``HOLT_AUDIT_KEY`` when one is set. Checkpoints are appended, one JSON object per line, to a file outside
Redis (``$HOLT_AUDIT_CHECKPOINT_FILE``, else ``<data dir>/audit/<instance>.checkpoints.jsonl``, mode 0600)
and, when ``$HOLT_AUDIT_CHECKPOINT_WEBHOOK`` is set, posted there too. Whoever can rewrite Redis can then
no longer delete, truncate or recompute the trail unseen: ``holt audit verify`` compares the trail with the
checkpoints (the pure rules are in ``check_against``).

A checkpoint is written after every human act (``AuditTrail.commit``) and at least once a minute by the
orchestrator while the trail changes (``anchor_forever``). ``holt destroy`` appends a ``destroyed``
checkpoint (count 0): checkpoints before it belong to the instance's previous life.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from holt_core.embedded_redis import default_data_dir

CHECKPOINT_FILE_ENV = "HOLT_AUDIT_CHECKPOINT_FILE"
CHECKPOINT_WEBHOOK_ENV = "HOLT_AUDIT_CHECKPOINT_WEBHOOK"
CHECKPOINT_INTERVAL_S = 60.0
WEBHOOK_TIMEOUT_S = 3.0
SIG_HMAC = "hmac-sha256"
SIG_NONE = "none"
REASON_HUMAN = "human_act"
REASON_PERIODIC = "periodic"
REASON_DESTROYED = "destroyed"
REASON_MANUAL = "manual"
_DOMAIN = b"holt-audit-checkpoint\x00"

log = logging.getLogger("holt.audit")


class Checkpoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: int = 1
    instance: str
    seq: int  # the number of records in the trail (= the newest record's seq)
    hash: str  # that record's hash (the genesis hash for an empty trail)
    ts_ms: int
    reason: str = REASON_PERIODIC
    sig_alg: str = SIG_NONE
    sig: str = ""

    def canonical(self) -> bytes:
        body = self.model_dump(exclude={"sig"})
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def signed(self, key: bytes | None) -> Checkpoint:
        if key is None:
            return self.model_copy(update={"sig_alg": SIG_NONE, "sig": ""})
        draft = self.model_copy(update={"sig_alg": SIG_HMAC})
        return draft.model_copy(update={"sig": hmac.new(key, _DOMAIN + draft.canonical(), hashlib.sha256).hexdigest()})

    def signature_problem(self, key: bytes | None) -> str | None:
        """None when the signature holds (or there is neither key nor signature)."""
        if self.sig_alg == SIG_NONE:
            return "it is unsigned while HOLT_AUDIT_KEY is set" if key is not None else None
        if self.sig_alg != SIG_HMAC:
            return f"unknown signature algorithm {self.sig_alg!r}"
        if key is None:
            return "it is HMAC-signed: set HOLT_AUDIT_KEY to verify it"
        expected = hmac.new(key, _DOMAIN + self.canonical(), hashlib.sha256).hexdigest()
        return None if hmac.compare_digest(expected, self.sig) else "its signature does not match (forged or edited)"

    @property
    def when(self) -> str:
        return datetime.fromtimestamp(self.ts_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class AnchorSettings:
    path: Path
    webhook: str = ""

    @classmethod
    def for_instance(cls, instance: str) -> AnchorSettings:
        raw = os.environ.get(CHECKPOINT_FILE_ENV, "").strip()
        path = Path(raw).expanduser() if raw else default_checkpoint_file(instance)
        return cls(path, os.environ.get(CHECKPOINT_WEBHOOK_ENV, "").strip())


def default_checkpoint_file(instance: str) -> Path:
    return default_data_dir() / "audit" / f"{instance}.checkpoints.jsonl"


def append_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """One line, appended with O_APPEND (so writers in several processes never interleave), then fsync."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (checkpoint.model_dump_json() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def open_private(path: Path) -> int:
    """A new file only its owner can read (0600 from the first byte), replacing ``path`` when done."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, mode 0600 (audit exports and archives are not for everyone)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = open_private(tmp)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            fd = -1
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
    finally:
        if fd >= 0:
            os.close(fd)
    tmp.replace(path)


class CheckpointFileError(ValueError):
    pass


def read_checkpoints(path: Path, instance: str) -> list[Checkpoint]:
    """This instance's checkpoints in ``path`` (file order), from its last ``destroyed`` one on."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CheckpointFileError(f"cannot read checkpoint file {path}: {exc.strerror}") from None
    out: list[Checkpoint] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            checkpoint = Checkpoint.model_validate_json(line)
        except ValidationError:
            raise CheckpointFileError(f"checkpoint file {path} line {number} does not decode") from None
        if checkpoint.instance != instance:
            continue
        if checkpoint.reason == REASON_DESTROYED:
            out.clear()
        out.append(checkpoint)
    return out


# ---------------------------------------------------------------------- the rules (pure)


def newest(checkpoints: Iterable[Checkpoint]) -> Checkpoint | None:
    return max(checkpoints, key=lambda c: (c.seq, c.ts_ms), default=None)


def signature_problems(checkpoints: Iterable[Checkpoint], key: bytes | None) -> str | None:
    for checkpoint in checkpoints:
        problem = checkpoint.signature_problem(key)
        if problem:
            return f"checkpoint of record {checkpoint.seq} at {checkpoint.when} is not trustworthy: {problem}"
    return None


def check_record(expected: dict[int, Checkpoint], seq: int, digest: str) -> str | None:
    """A record against the checkpoints taken when it was the newest."""
    checkpoint = expected.get(seq)
    if checkpoint is not None and not hmac.compare_digest(checkpoint.hash, digest):
        return (f"record {seq} differs from the checkpoint of {checkpoint.when}: "
                "the trail was rewritten")
    return None


def check_length(latest: Checkpoint | None, trail_seq: int) -> str | None:
    """The trail must reach at least as far as the newest checkpoint."""
    if latest is None or latest.seq <= trail_seq:
        return None
    if trail_seq == 0:
        return (f"the trail is empty but the checkpoint of {latest.when} recorded {latest.seq} records: "
                "the trail was deleted")
    return (f"the trail ends at record {trail_seq} but the checkpoint of {latest.when} recorded {latest.seq}: "
            "records were removed")


def by_seq(checkpoints: Iterable[Checkpoint]) -> dict[int, Checkpoint]:
    """The checkpoints to compare records with (the first one per seq; a conflicting second fails anyway)."""
    out: dict[int, Checkpoint] = {}
    for checkpoint in checkpoints:
        if checkpoint.reason != REASON_DESTROYED and checkpoint.seq > 0:
            out.setdefault(checkpoint.seq, checkpoint)
    return out


# ---------------------------------------------------------------------- writing


class Anchor:
    """Writes checkpoints for one instance (the file, then the webhook when one is configured)."""

    def __init__(self, instance: str, key: bytes | None, settings: AnchorSettings | None = None) -> None:
        self.instance = instance
        self.key = key
        self.settings = settings or AnchorSettings.for_instance(instance)

    def make(self, seq: int, digest: str, reason: str, ts_ms: int) -> Checkpoint:
        return Checkpoint(instance=self.instance, seq=seq, hash=digest, ts_ms=ts_ms, reason=reason).signed(self.key)

    async def write(self, checkpoint: Checkpoint) -> bool:
        """True when the file took it. Never raises: the act it anchors is already committed."""
        written = True
        try:
            append_checkpoint(self.settings.path, checkpoint)
        except OSError as exc:
            written = False
            log.warning("audit checkpoint not written to %s: %s", self.settings.path, exc)
        if self.settings.webhook:
            import httpx  # only when a webhook is configured: every CLI command imports this module

            with contextlib.suppress(httpx.HTTPError):
                async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S) as client:
                    await client.post(self.settings.webhook, json=checkpoint.model_dump())
        return written


async def anchor_forever(head: Callable[[], Awaitable[tuple[int, str]]], anchor: Anchor, *,
                         clock: Callable[[], int], interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
    """A checkpoint at start and then every ``interval_s`` whenever the trail has moved (the orchestrator)."""
    last: tuple[int, str] | None = None
    while True:
        try:
            current = await head()
            if current != last and current[0] > 0:
                await anchor.write(anchor.make(current[0], current[1], REASON_PERIODIC, clock()))
                last = current
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a Redis hiccup must not end the anchoring
            log.warning("audit checkpoint skipped: %s", exc)
        await asyncio.sleep(interval_s)
