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
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, ValidationError

from holt_core.embedded_redis import default_data_dir
from holt_core.errors import HoltError

if TYPE_CHECKING:  # cryptography is imported where a key is loaded, made or checked: reading records needs none
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

CHECKPOINT_FILE_ENV = "HOLT_AUDIT_CHECKPOINT_FILE"
CHECKPOINT_WEBHOOK_ENV = "HOLT_AUDIT_CHECKPOINT_WEBHOOK"
CHECKPOINT_INTERVAL_S = 60.0
WEBHOOK_TIMEOUT_S = 3.0
SIG_HMAC = "hmac-sha256"
SIG_ED25519 = "ed25519"
SIG_NONE = "none"
AUDIT_KEY_ENV = "HOLT_AUDIT_KEY"
SIGNING_KEY_ENV = "HOLT_AUDIT_SIGNING_KEY_FILE"  # an Ed25519 private key (PEM): signs checkpoints
VERIFY_KEY_ENV = "HOLT_AUDIT_VERIFY_KEY_FILE"  # its public key (PEM): verifies them, cannot forge them
REASON_HUMAN = "human_act"
REASON_PERIODIC = "periodic"
REASON_DESTROYED = "destroyed"
REASON_MANUAL = "manual"
_DOMAIN = b"holt-audit-checkpoint\x00"
_MISMATCH = "its signature does not match (forged or edited)"

log = logging.getLogger("holt.audit")


class AnchorKeyError(HoltError):
    pass


@dataclass(frozen=True)
class CheckpointKeys:
    """What signs and verifies checkpoints: the audit HMAC key and/or an Ed25519 key pair.

    With Ed25519, whoever verifies needs only the public key, so an auditor can check checkpoints it could
    not have forged.
    """

    hmac_key: bytes | None = None
    ed_private: Ed25519PrivateKey | None = None
    ed_public: Ed25519PublicKey | None = None

    @property
    def configured(self) -> bool:
        return self.hmac_key is not None or self.ed_public is not None

    @classmethod
    def from_env(cls, hmac_key: bytes | None) -> CheckpointKeys:
        private: Ed25519PrivateKey | None = None
        public: Ed25519PublicKey | None = None
        signing = os.environ.get(SIGNING_KEY_ENV, "").strip()
        verifying = os.environ.get(VERIFY_KEY_ENV, "").strip()
        if signing or verifying:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
        if signing:
            loaded = serialization.load_pem_private_key(_key_bytes(signing, SIGNING_KEY_ENV), password=None)
            if not isinstance(loaded, Ed25519PrivateKey):
                raise AnchorKeyError(f"{SIGNING_KEY_ENV}: {signing} is not an Ed25519 private key",
                                     hint="holt audit keygen FILE writes one")
            private, public = loaded, loaded.public_key()
        if verifying:
            loaded_public = serialization.load_pem_public_key(_key_bytes(verifying, VERIFY_KEY_ENV))
            if not isinstance(loaded_public, Ed25519PublicKey):
                raise AnchorKeyError(f"{VERIFY_KEY_ENV}: {verifying} is not an Ed25519 public key")
            public = loaded_public
        return cls(hmac_key, private, public)


def _key_bytes(path: str, env: str) -> bytes:
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise AnchorKeyError(f"{env}: cannot read {path}: {exc.strerror}") from None
    if b"-----BEGIN" not in data:
        raise AnchorKeyError(f"{env}: {path} is not a PEM key", hint="holt audit keygen FILE writes one")
    return data


def generate_signing_key(path: Path) -> Path:
    """A new Ed25519 key: the private key to ``path`` (0600), the public key to ``path.pub``; returns the latter."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    if path.exists():
        raise AnchorKeyError(f"{path} exists; not overwriting a key")
    write_private(path, pem.decode())
    public = path.with_name(path.name + ".pub")
    public.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))
    return public


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

    def signed(self, keys: CheckpointKeys) -> Checkpoint:
        """Signed with the ed25519 key when one is configured, else with the HMAC key, else unsigned."""
        if keys.ed_private is not None:
            draft = self.model_copy(update={"sig_alg": SIG_ED25519})
            return draft.model_copy(update={"sig": keys.ed_private.sign(_DOMAIN + draft.canonical()).hex()})
        if keys.hmac_key is not None:
            draft = self.model_copy(update={"sig_alg": SIG_HMAC})
            digest = hmac.new(keys.hmac_key, _DOMAIN + draft.canonical(), hashlib.sha256).hexdigest()
            return draft.model_copy(update={"sig": digest})
        return self.model_copy(update={"sig_alg": SIG_NONE, "sig": ""})

    def signature_problem(self, keys: CheckpointKeys) -> str | None:
        """None when the signature holds (or there is neither key nor signature)."""
        if self.sig_alg == SIG_NONE:
            return "it is unsigned while a checkpoint key is set" if keys.configured else None
        if self.sig_alg == SIG_HMAC:
            if keys.hmac_key is None:
                return f"it is HMAC-signed: set {AUDIT_KEY_ENV} to verify it"
            expected = hmac.new(keys.hmac_key, _DOMAIN + self.canonical(), hashlib.sha256).hexdigest()
            return None if hmac.compare_digest(expected, self.sig) else _MISMATCH
        if self.sig_alg == SIG_ED25519:
            if keys.ed_public is None:
                return f"it is ed25519-signed: set {VERIFY_KEY_ENV} (or {SIGNING_KEY_ENV}) to verify it"
            from cryptography.exceptions import InvalidSignature

            try:
                keys.ed_public.verify(bytes.fromhex(self.sig), _DOMAIN + self.canonical())
            except (InvalidSignature, ValueError):
                return _MISMATCH
            return None
        return f"unknown signature algorithm {self.sig_alg!r}"

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


def signature_problems(checkpoints: Iterable[Checkpoint], keys: CheckpointKeys) -> str | None:
    for checkpoint in checkpoints:
        problem = checkpoint.signature_problem(keys)
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

    def __init__(self, instance: str, keys: CheckpointKeys, settings: AnchorSettings | None = None) -> None:
        self.instance = instance
        self.keys = keys
        self.settings = settings or AnchorSettings.for_instance(instance)

    def make(self, seq: int, digest: str, reason: str, ts_ms: int) -> Checkpoint:
        return Checkpoint(instance=self.instance, seq=seq, hash=digest, ts_ms=ts_ms, reason=reason).signed(self.keys)

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
