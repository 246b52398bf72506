"""Registered operators: a person's name, roles and token, and the Redis user that authenticates the person.

``holt operator add NAME`` (admin) creates the Redis ACL user ``holt-op-NAME`` whose password is a random token,
and a record in ``holt-admin:operators`` (a key only admin may write) holding the token's sha256, never the token.
Whoever holds the token connects to Redis as that user (``operator_url``), and Redis lets that user write that
operator's proofs and nobody else's: that is what makes a human act that person's (holt_core/hitl/proofs.py).
Revoking switches the user off and drops its connections: the token stops working at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

import platformdirs
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from holt_core.acl import command, operator_rules, operator_user, setuser_args, with_user
from holt_core.errors import HoltError, InvalidInput, NotFound
from holt_core.identity import validate_operator
from holt_core.keys import OPERATORS
from holt_core.models import now_ms

TOKEN_ENV = "HOLT_OPERATOR_TOKEN"
_ROLE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


class OperatorRecord(BaseModel):
    name: str
    roles: list[str] = []
    token_sha256: str
    created_ms: int
    revoked: bool = False
    revoked_ms: int = 0

    @property
    def user(self) -> str:
        return operator_user(self.name)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_roles(text: str) -> list[str]:
    roles = [r.strip() for r in text.split(",") if r.strip()]
    for role in roles:
        if not set(role) <= _ROLE_CHARS or len(role) > 64:
            raise InvalidInput(f"invalid role {role!r}", hint="roles are letters, digits, '.', '_' or '-'")
    return list(dict.fromkeys(roles))


# ------------------------------------------------------------------ reading


async def list_operators(redis: Redis) -> list[OperatorRecord]:
    raw = await redis.hgetall(OPERATORS)
    out = []
    for value in raw.values():
        with contextlib.suppress(ValidationError, ValueError):
            out.append(OperatorRecord.model_validate_json(str(value)))
    return sorted(out, key=lambda r: r.name)


async def get_operator(redis: Redis, name: str) -> OperatorRecord | None:
    raw = await redis.hget(OPERATORS, name)
    if not raw:
        return None
    try:
        return OperatorRecord.model_validate_json(str(raw))
    except ValidationError:
        return None


async def verify_token(redis: Redis, token: str) -> OperatorRecord | None:
    """The live (not revoked) operator whose token this is; every record is compared in constant time."""
    if not token:
        return None
    digest = token_digest(token)
    found: OperatorRecord | None = None
    for record in await list_operators(redis):
        if hmac.compare_digest(record.token_sha256, digest) and not record.revoked:
            found = record
    return found


# ------------------------------------------------------------------ changing (admin connection)


async def _save_acl(redis: Redis) -> None:
    """Persist the ACL users in the aclfile (hashed); a Redis started without one keeps them in memory only."""
    try:
        await command(redis, "ACL", "SAVE")
    except ResponseError as err:
        if "aclfile" not in str(err).lower():
            raise


async def add_operator(redis: Redis, name: str, roles: list[str]) -> tuple[OperatorRecord, str]:
    """Create (or re-issue the token of) an operator; returns the record and the token (shown once)."""
    validate_operator(name)
    token = secrets.token_urlsafe(32)
    await command(redis, "ACL", "SETUSER", *setuser_args(operator_user(name), token, operator_rules(name)))
    await _save_acl(redis)
    record = OperatorRecord(name=name, roles=roles, token_sha256=token_digest(token), created_ms=now_ms())
    await redis.hset(OPERATORS, name, record.model_dump_json())
    return record, token


async def revoke_operator(redis: Redis, name: str) -> OperatorRecord:
    """Switch the operator's Redis user off, close its connections, and mark the record revoked."""
    record = await get_operator(redis, name)
    if record is None:
        raise NotFound(f"operator {name!r} is not registered", hint="holt operator list shows who is")
    user = operator_user(name)
    await command(redis, "ACL", "SETUSER", user, "off", "resetpass")
    with contextlib.suppress(ResponseError):
        await command(redis, "CLIENT", "KILL", "USER", user)
    await _save_acl(redis)
    record = record.model_copy(update={"revoked": True, "revoked_ms": now_ms()})
    await redis.hset(OPERATORS, name, record.model_dump_json())
    return record


def operator_url(base_url: str, name: str, token: str) -> str:
    """``base_url`` (any holt Redis URL) authenticating as operator ``name`` with its token."""
    return with_user(base_url, operator_user(validate_operator(name)), token)


# ------------------------------------------------------------------ the token on this machine


def token_dir() -> Path:
    return platformdirs.user_config_path("holt") / "tokens"


def save_token(name: str, token: str) -> Path:
    """Write the token to ``<config>/holt/tokens/<name>``, readable by this user only."""
    folder = token_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / validate_operator(name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)  # an older file may have had another mode
    return path


def load_token(name: str) -> str | None:
    try:
        text = (token_dir() / validate_operator(name)).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise HoltError(f"cannot read the token of {name}: {err.strerror}") from err
    return text or None
