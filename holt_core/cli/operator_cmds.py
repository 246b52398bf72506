"""``holt operator add|list|revoke`` and ``holt acl``: who may act as a person, and the Redis users behind it."""

from __future__ import annotations

import contextlib
import json
from typing import Annotated

import typer
from redis.asyncio import Redis
from redis.exceptions import RedisError

from holt_core.acl import ADMIN_USER, command, role_setup, setup_script, url_password
from holt_core.blackboard import Blackboard
from holt_core.cli.common import JsonOpt, redis_client, run_async
from holt_core.cli.output import stdout, success, warn
from holt_core.embedded_redis import resolve_redis_url
from holt_core.errors import HoltError
from holt_core.identity import human_role, require_admin, validate_operator
from holt_core.keys import INSTANCES
from holt_core.operators import add_operator, list_operators, parse_roles, revoke_operator, save_token
from holt_core.sanitise import sanitise_text

app = typer.Typer(help="Registered operators: the people who may answer, approve and debug.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="operator")
    root.command("acl")(acl)


async def _audit_everywhere(redis: Redis, *, action: str, name: str, details: dict[str, object]) -> None:
    """Operators are shared by every instance: each instance's trail records the change."""
    by = await _whoami(redis)
    for instance in sorted(str(i) for i in await redis.hkeys(INSTANCES)):
        bb = Blackboard(redis, instance)
        with contextlib.suppress(HoltError):
            await bb.audit.append(operator=f"admin:{by}", action=action, subject=human_role(name), details=details)


async def _whoami(redis: Redis) -> str:
    return str(await command(redis, "ACL", "WHOAMI"))


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The operator's name (as used in holt.yml hitl.operators).")],
    roles: Annotated[str, typer.Option("--roles", help="Comma-separated roles, e.g. approver,operator.")] = "",
    save: Annotated[bool, typer.Option("--save", help="Also write the token to your config dir (0600).")] = False,
) -> None:
    """Register an operator (or issue a new token): admin only. Prints the token once."""
    validate_operator(name)
    role_list = parse_roles(roles)

    async def go() -> str:
        redis = redis_client(resolve_redis_url(start=False))
        try:
            await require_admin(redis, "registering an operator")
            _, token = await add_operator(redis, name, role_list)
            await _audit_everywhere(redis, action="operator_added", name=name, details={"roles": role_list})
            return token
        finally:
            await redis.aclose()

    token = run_async(go())
    success(f"operator {name} registered (roles: {', '.join(role_list) or 'none'})")
    if save:
        path = save_token(name, token)
        stdout.print(f"token saved to {path}")
    else:
        stdout.print("token (shown once; give it to the person, who sets HOLT_OPERATOR_TOKEN or saves it):")
        typer.echo(token)


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """Registered operators, their roles and whether they were revoked."""

    async def go() -> list[dict[str, object]]:
        redis = redis_client(resolve_redis_url(start=False))
        try:
            return [r.model_dump(exclude={"token_sha256"}) for r in await list_operators(redis)]
        finally:
            await redis.aclose()

    rows = run_async(go())
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        stdout.print("no operators registered (holt operator add NAME --roles ...)")
    for row in rows:
        state = "revoked" if row["revoked"] else "active"
        roles = ", ".join(str(r) for r in row["roles"]) if isinstance(row["roles"], list) else ""
        stdout.print(sanitise_text(f"{row['name']}  {state}  roles: {roles or '-'}"), markup=False)


@app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The operator to revoke.")]) -> None:
    """Revoke an operator: its token stops working at once (admin only)."""
    validate_operator(name)

    async def go() -> None:
        redis = redis_client(resolve_redis_url(start=False))
        try:
            await require_admin(redis, "revoking an operator")
            await revoke_operator(redis, name)
            await _audit_everywhere(redis, action="operator_revoked", name=name, details={})
        finally:
            await redis.aclose()

    run_async(go())
    success(f"operator {name} revoked")


def acl(apply: Annotated[bool, typer.Option("--apply", help="Create the users now (needs admin credentials).")]
        = False) -> None:
    """Print (or apply) the Redis ACL users holt uses, for an external Redis (HOLT_REDIS_URL)."""
    url = resolve_redis_url(start=False)
    password = url_password(url)
    if not password:
        raise HoltError("the Redis URL has no password: role passwords derive from it",
                        hint="set a password on the Redis user holt connects as, and put it in HOLT_REDIS_URL")
    if not apply:
        typer.echo(setup_script(password))
        return

    async def go() -> None:
        redis = redis_client(url)
        try:
            for args in role_setup(password, hashed=True):
                if args[0] == "default":
                    continue  # disabling it could lock out the URL in use; the printed script says how
                await command(redis, "ACL", "SETUSER", *args)
            with contextlib.suppress(RedisError):
                await command(redis, "ACL", "SAVE")
        except RedisError as err:
            raise HoltError(f"Redis refused the ACL setup: {sanitise_text(str(err))}",
                            hint="run it with the Redis administrator's credentials in HOLT_REDIS_URL") from None
        finally:
            await redis.aclose()

    run_async(go())
    success("holt ACL users created")
    warn(f"switch HOLT_REDIS_URL to the {ADMIN_USER} user, then disable the default user "
         "(`holt acl` prints the command)")
