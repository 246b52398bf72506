"""Who is acting: the operator identity behind every human act and audit record.

Resolution order (hitl-and-debugging.md, Identity): ``--as``, else ``HOLT_OPERATOR``, else the login name.
Who a person IS is decided by Redis: the CLI connects as the operator whose token it holds (Redis user
``holt-op-<name>``, holt_core/operators.py), and only that user may write that operator's proofs. ``--as`` is
impersonation and needs the admin user. Machine actors use reserved ``system:<what>`` identities that no
operator can claim.
"""

from __future__ import annotations

import getpass
import os
import re
from typing import TYPE_CHECKING

from holt_core.acl import ADMIN_USER, command
from holt_core.errors import HoltError, InvalidInput

if TYPE_CHECKING:
    from redis.asyncio import Redis

OPERATOR_ENV = "HOLT_OPERATOR"
SYSTEM_TIMEOUT = "system:timeout"
SYSTEM_ORCHESTRATOR = "system:orchestrator"
HUMAN_PREFIX = "human:"

_OPERATOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def is_operator_name(name: str) -> bool:
    return bool(_OPERATOR.match(name))


def validate_operator(name: str) -> str:
    if not is_operator_name(name):
        raise InvalidInput(
            f"invalid operator name {name!r}",
            hint="use 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit",
        )
    return name


def resolve_operator(explicit: str | None = None) -> str:
    """The acting operator: ``explicit`` (``--as``), else $HOLT_OPERATOR, else the login name."""
    if explicit:
        return validate_operator(explicit)
    env = os.environ.get(OPERATOR_ENV, "").strip()
    if env:
        return validate_operator(env)
    try:
        login = getpass.getuser()
    except (KeyError, OSError) as exc:  # no passwd entry (some containers)
        raise InvalidInput(
            "cannot tell who you are", hint=f"pass --as NAME or set {OPERATOR_ENV}"
        ) from exc
    return validate_operator(login)


def human_role(operator: str) -> str:
    """The ``produced_by_role`` of an artefact written by a person."""
    return f"{HUMAN_PREFIX}{operator}"


def is_human_role(role: str) -> bool:
    return role.startswith(HUMAN_PREFIX)


def operator_of_role(role: str) -> str | None:
    """The operator behind ``human:<operator>``, or None for an agent or system role."""
    return role[len(HUMAN_PREFIX) :] if is_human_role(role) else None


async def whoami(redis: Redis) -> str:
    """The Redis user this connection authenticated as (``default`` on a Redis without ACL users)."""
    return str(await command(redis, "ACL", "WHOAMI"))


async def require_admin(redis: Redis, what: str) -> str:
    """Refuse ``what`` unless this connection is Redis's holt-admin (or a Redis without holt's ACL users)."""
    user = await whoami(redis)
    if user not in (ADMIN_USER, "default"):
        raise HoltError(f"{what} needs the admin identity (this connection is Redis user {user})",
                        hint="run it where the admin credentials are: server.json of the local Redis, "
                             "or HOLT_REDIS_URL with the holt-admin user")
    return user
