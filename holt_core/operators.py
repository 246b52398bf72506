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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs
from pydantic import BaseModel, ValidationError

from holt_core.acl import ADMIN_USER, command, operator_rules, operator_user, setuser_args, with_user
from holt_core.errors import HoltError, InvalidInput, NotFound
from holt_core.identity import OPERATOR_ENV, resolve_operator, validate_operator, whoami
from holt_core.keys import OPERATORS
from holt_core.models import now_ms
from holt_core.redis_conn import connect_redis, open_client
from holt_core.redis_wire import loaded_errors

if TYPE_CHECKING:
    from redis.asyncio import Redis

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
    except loaded_errors("ResponseError") as err:
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
    try:
        await command(redis, "CLIENT", "KILL", "USER", user)
    except loaded_errors("ResponseError"):
        pass
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


# ------------------------------------------------------------------ who is acting (the CLI, the TUI)


@dataclass(frozen=True)
class Actor:
    """The person a client acts as, and the Redis URL that authenticates as that person."""

    operator: str
    url: str
    impersonated_by: str = ""  # set when an admin acts as someone else (``--as``)


class NotAuthenticated(HoltError):
    exit_code = 1


def _no_token(name: str) -> NotAuthenticated:
    return NotAuthenticated(
        f"no operator token for {name}: human acts need one",
        hint=f"an admin runs `holt operator add {name} --roles ... --save` (it saves your token), or set "
             f"{TOKEN_ENV} to the token you were given",
    )


async def authenticate(base_url: str, as_operator: str | None = None) -> Actor:
    """Who is acting, proven to Redis: the operator whose token this process holds (``HOLT_OPERATOR_TOKEN``,
    else the saved token of ``$HOLT_OPERATOR`` / the login name), connecting as that operator's Redis user.

    ``as_operator`` (``--as``) is impersonation: only the admin identity (``base_url`` authenticates as
    holt-admin, or as the default user of a Redis without holt's ACL users) may use it.

    It reads (ACL WHOAMI, the operator registry) on the light client (holt_core/redis_conn.py), without redis-py.
    """
    redis = open_client(base_url, connect_timeout_s=5)
    try:
        user = await whoami(redis)
        if as_operator:
            name = validate_operator(as_operator)
            if user == operator_user(name):
                return Actor(operator=name, url=base_url)
            if user not in (ADMIN_USER, "default"):
                raise NotAuthenticated(
                    f"--as {name} needs the admin identity (this connection is Redis user {user})",
                    hint=f"act as yourself: drop --as (your token: {TOKEN_ENV} or `holt operator add`)")
            return Actor(operator=name, url=base_url, impersonated_by=ADMIN_USER)
        if user.startswith("holt-op-"):
            return Actor(operator=user.removeprefix("holt-op-"), url=base_url)  # the URL already authenticates
        token = os.environ.get(TOKEN_ENV, "").strip()
        where = TOKEN_ENV
        if not token:
            name = resolve_operator(None)
            token = load_token(name) or ""
            where = str(token_dir() / name)
            if not token:
                raise _no_token(name)
        record = await verify_token(redis, token)
        if record is None:
            raise NotAuthenticated(f"the operator token in {where} is unknown or revoked",
                                   hint="ask an admin for a new one: holt operator add NAME --save")
        explicit = os.environ.get(OPERATOR_ENV, "").strip()
        if explicit and explicit != record.name and where == TOKEN_ENV:
            raise NotAuthenticated(f"{TOKEN_ENV} belongs to {record.name}, not {OPERATOR_ENV}={explicit}")
        return Actor(operator=record.name, url=operator_url(base_url, record.name, token))
    finally:
        await redis.aclose()


async def ensure_local_operator(url: str, configured_roles: dict[str, list[str]]) -> tuple[str, Path] | None:
    """Local mode (``holt up`` on the embedded Redis): register the login user as an operator with a saved token,
    unless its saved token already works. Roles: holt.yml's ``hitl.operators`` entry, else approver+operator.
    Returns (name, token file) when it registered someone."""
    name = resolve_operator(None)
    redis = connect_redis(url, socket_connect_timeout=5)
    try:
        token = load_token(name)
        if token is not None and await verify_token(redis, token) is not None:
            return None
        roles = configured_roles.get(name) or ["approver", "operator"]
        _, token = await add_operator(redis, name, roles)
    finally:
        await redis.aclose()
    return name, save_token(name, token)
