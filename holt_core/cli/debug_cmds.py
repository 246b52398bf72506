"""``holt debug ...`` and ``holt explain``: the scriptable debugging control plane (a client of DebugClient)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from holt_core.cli.common import AsOpt, JsonOpt, NameOpt, open_blackboard, run_async
from holt_core.cli.output import stdout, success, warn
from holt_core.debug.breakpoints import BreakpointAction, BreakpointSpec, BreakpointStatus
from holt_core.debug.client import DebugClient, Released, process_started_ms
from holt_core.debug.explain import Explanation
from holt_core.debug.held import HeldDecision
from holt_core.debug.lease import LeaseInfo
from holt_core.debug.runs import RunMark
from holt_core.embedded_redis import resolve_redis_url
from holt_core.errors import InvalidInput
from holt_core.identity import resolve_operator
from holt_core.operators import authenticate
from holt_core.sanitise import sanitise_text

app = typer.Typer(help="Breakpoints, held decisions, stepping, manual actions and the control lease.",
                  no_args_is_help=True)
break_app = typer.Typer(help="Breakpoints on orchestration decisions.", no_args_is_help=True)
lease_app = typer.Typer(help="The control lease: one operator at a time may change the debug state.")
app.add_typer(break_app, name="break")
app.add_typer(lease_app, name="lease")

T = TypeVar("T")
TargetArg = Annotated[str | None, typer.Argument(help="Claim, artefact or hold id (or a 6+ character prefix); "
                                                       "default: the oldest held decision.")]


def register(root: typer.Typer) -> None:
    """Add this module's commands to the ``holt`` app."""
    root.add_typer(app, name="debug")
    root.command("explain")(explain_cmd)


def _run(name: str | None, operator: str | None, act: Callable[[DebugClient], Awaitable[T]], *,
         read: bool = False) -> T:
    """Run ``act`` as the authenticated operator (its own Redis user); ``read``: looking only, no token needed."""

    async def main() -> T:
        base = resolve_redis_url(start=False)
        if read:
            who, url, impersonated_by = resolve_operator(operator), base, ""
        else:
            actor = await authenticate(base, operator)
            who, url, impersonated_by = actor.operator, actor.url, actor.impersonated_by
        async with open_blackboard(name, url=url, client_name="holt-debug") as bb:
            client = DebugClient(bb, who, issued_at_ms=process_started_ms())
            client.impersonated_by = impersonated_by
            return await act(client)

    return run_async(main())


def _out(text: str) -> None:
    stdout.out(sanitise_text(text, keep_newlines=True), highlight=False)


def _json(value: BaseModel | list[Any] | dict[str, Any] | None) -> None:
    if isinstance(value, BaseModel):
        data: Any = value.model_dump(mode="json")
    elif isinstance(value, list):
        data = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    else:
        data = value
    stdout.out(json.dumps(data, sort_keys=True, ensure_ascii=False), highlight=False)


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bp_line(bp: BreakpointStatus) -> str:
    state = "enabled" if bp.enabled else "disabled"
    return f"{bp.id}  {bp.action.value:4s}  {state:8s}  hits={bp.hits}  {bp.describe()}  (by {bp.created_by})"


def _held_lines(h: HeldDecision) -> list[str]:
    d = h.decision
    lines = [f"{h.hold_id}  {d.kind.value}  {d.summary}  (subject {h.subject})",
             f"    held since {_when(h.held_since_ms)} by {h.reason.value}"
             + (f" {h.breakpoint_id}" if h.breakpoint_id else "") + f"; claim {d.claim_id or '-'} ({d.claim_status})"]
    if h.artefact is not None:
        a = h.artefact
        lines.append(f"    artefact {a.id} {a.type} v{a.version} ({a.structural_type}) by {a.produced_by_role}: "
                     f"{a.payload_excerpt[:120]!r}")
    if h.bids:
        lines.append("    bids: " + ", ".join(f"{k}={v}" for k, v in sorted(h.bids.items())))
    if h.release:
        lines.append(f"    released ({h.release}) by {h.released_by} at {_when(h.released_at_ms)}: "
                     "waiting for the orchestrator")
    return lines


# ---------------------------------------------------------------------------------------------- breakpoints


@break_app.command("add")
def break_add(
    artefact_type: Annotated[str | None, typer.Option("--type", help="Artefact type glob (Recipe*).")] = None,
    structural_type: Annotated[str | None, typer.Option("--structural-type", help="Standard, Question, ...")] = None,
    produced_by: Annotated[str | None, typer.Option("--produced-by", help="Role that produced the artefact.")] = None,
    granted: Annotated[str | None, typer.Option("--granted", help="A role the decision grants to.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="Claim status (pending_review, ...).")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Decision kind (create_claim, grant_review, "
                                                            "grant_parallel, grant_exclusive, queue_grant, dormant, "
                                                            "start_feedback, complete, terminate).")] = None,
    payload: Annotated[str | None, typer.Option("--payload", help="Regular expression searched in the target "
                                                                  "artefact's payload.")] = None,
    hit: Annotated[str | None, typer.Option("--hit", help="Hit condition: >=N, ==N, >N or %N.")] = None,
    action: Annotated[BreakpointAction, typer.Option("--action", help="hold: that claim only; stop: full control.")
                      ] = BreakpointAction.HOLD,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
    name: NameOpt = None,
    operator: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a breakpoint; matching decisions are held (criteria left out match anything)."""
    try:
        spec = BreakpointSpec(artefact_type=artefact_type, structural_type=structural_type,
                              produced_by_role=produced_by, granted_role=granted, claim_status=status,
                              decision_kind=kind, payload_regex=payload, hit_condition=hit, action=action,
                              enabled=not disabled)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(f"invalid breakpoint: {first['msg']}") from None
    bp = _run(name, operator, lambda c: c.add_breakpoint(spec))
    if as_json:
        _json(bp)
    else:
        success(sanitise_text(f"breakpoint {bp.id} added: {bp.action.value} on {bp.describe()}"))


@break_app.command("rm")
def break_rm(breakpoint_id: str, name: NameOpt = None, operator: AsOpt = None, as_json: JsonOpt = False) -> None:
    """Remove a breakpoint (decisions it already holds stay held)."""
    bp = _run(name, operator, lambda c: c.remove_breakpoint(breakpoint_id))
    _json(bp) if as_json else success(f"breakpoint {bp.id} removed")


@break_app.command("enable")
def break_enable(breakpoint_id: str, name: NameOpt = None, operator: AsOpt = None, as_json: JsonOpt = False) -> None:
    """Enable a breakpoint."""
    bp = _run(name, operator, lambda c: c.set_breakpoint_enabled(breakpoint_id, True))
    _json(bp) if as_json else success(f"breakpoint {bp.id} enabled")


@break_app.command("disable")
def break_disable(breakpoint_id: str, name: NameOpt = None, operator: AsOpt = None, as_json: JsonOpt = False) -> None:
    """Disable a breakpoint (kept, with its hit count)."""
    bp = _run(name, operator, lambda c: c.set_breakpoint_enabled(breakpoint_id, False))
    _json(bp) if as_json else success(f"breakpoint {bp.id} disabled")


@break_app.command("list")
def break_list(name: NameOpt = None, operator: AsOpt = None, as_json: JsonOpt = False) -> None:
    """List breakpoints with their hit counts."""
    bps = _run(name, operator, lambda c: c.breakpoints(), read=True)
    if as_json:
        _json(bps)
        return
    if not bps:
        _out("no breakpoints")
    for bp in bps:
        _out(_bp_line(bp))


# ---------------------------------------------------------------------------------------------- held and stepping


@app.command("held")
def held_cmd(name: NameOpt = None, operator: AsOpt = None, as_json: JsonOpt = False) -> None:
    """Held decisions (oldest first) and the control mode."""

    async def act(c: DebugClient) -> tuple[list[HeldDecision], Any, list[RunMark]]:
        state = await c.state()
        return state.held_list(), state.mode, await c.runs()

    held, mode, runs = _run(name, operator, act, read=True)
    if as_json:
        _json({"mode": mode.model_dump(mode="json"), "held": [h.model_dump(mode="json") for h in held],
               "runs_to_terminal": [r.model_dump(mode="json") for r in runs]})
        return
    for r in runs:
        _out(f"RUN TO TERMINAL: workflow {r.root} (by {r.by} since {_when(r.since_ms)}): its decisions are not held")
    if mode.full_control:
        _out(f"FULL CONTROL since {_when(mode.since_ms)} ({mode.reason or 'paused'} by {mode.by}): "
             "every decision waits")
    if not held:
        _out("no held decisions")
    for h in held:
        for line in _held_lines(h):
            _out(line)


def _report(result: Released, as_json: bool) -> None:
    if as_json:
        _json(result)
        return
    for h in result.decisions:
        verb = {"skip": "dropped"}.get(result.action, "released")
        success(sanitise_text(f"{result.action}: {verb} {h.decision.kind.value} {h.hold_id} on {h.subject}: "
                              f"{h.decision.summary}"))
    if not result.decisions:
        success(f"{result.action}: nothing was held")
    if result.action in ("continue", "resume") and not result.mode.full_control:
        _out("the instance runs on (until the next breakpoint hit)")


@app.command("step")
def step_cmd(target: TargetArg = None, name: NameOpt = None, operator: AsOpt = None, as_json: JsonOpt = False) -> None:
    """Carry out one held decision; the same claim's next decision is held again."""
    _report(_run(name, operator, lambda c: c.step(target)), as_json)


@app.command("continue")
def continue_cmd(
    target: TargetArg = None,
    workflow: Annotated[bool, typer.Option("--workflow", help="Only this decision's workflow (same root goal) "
                                                             "runs on; stay under full control.")] = False,
    to_terminal: Annotated[bool, typer.Option("--to-terminal", help="This decision's workflow runs on, past "
                                                                   "breakpoints and full control, until its "
                                                                   "Terminal artefact exists; the others stay "
                                                                   "held.")] = False,
    name: NameOpt = None, operator: AsOpt = None, as_json: JsonOpt = False,
) -> None:
    """Carry out the held decision (all of them without an id), leave full control and run to the next hit."""
    if to_terminal:
        if workflow:
            raise InvalidInput("--to-terminal already keeps to this decision's workflow: drop --workflow")
        if target is None:
            raise InvalidInput("continue --to-terminal needs the held decision whose workflow runs on",
                               hint="holt debug held shows hold ids")
        result = _run(name, operator, lambda c: c.run_to_terminal(target))
        _report(result, as_json)
        if not as_json:
            _out("its workflow runs on until its Terminal artefact exists; every other workflow stays held")
        return
    _report(_run(name, operator, lambda c: c.continue_(target, workflow=workflow)), as_json)


@app.command("skip")
def skip_cmd(target: TargetArg = None, name: NameOpt = None, operator: AsOpt = None, as_json: JsonOpt = False) -> None:
    """Drop the held decision: the claim stays exactly as it is."""
    _report(_run(name, operator, lambda c: c.skip(target)), as_json)


@app.command("pause")
def pause_cmd(name: NameOpt = None, operator: AsOpt = None, as_json: JsonOpt = False) -> None:
    """Enter full control: every decision of the instance waits for a step."""
    mode = _run(name, operator, lambda c: c.pause())
    _json(mode) if as_json else success("full control: every decision now waits (holt debug step / resume)")


@app.command("resume")
def resume_cmd(name: NameOpt = None, operator: AsOpt = None, as_json: JsonOpt = False) -> None:
    """Leave full control; decisions held by breakpoints stay held."""
    _report(_run(name, operator, lambda c: c.resume()), as_json)


# ---------------------------------------------------------------------------------------------- manual actions


@app.command("terminate")
def terminate_cmd(
    claim_id: Annotated[str, typer.Argument(help="The claim to terminate (id or 6+ character prefix).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded on the claim and in the audit).")] = "",
    name: NameOpt = None,
    operator: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Terminate an open claim now (audited; its held decision goes with it)."""
    claim = _run(name, operator, lambda c: c.terminate(claim_id, reason))
    if as_json:
        _json({"claim_id": claim.id, "status": claim.status.value, "termination_reason": claim.termination_reason})
    else:
        success(sanitise_text(f"claim {claim.id} terminated: {claim.termination_reason}"))


@app.command("inject-review")
def inject_review_cmd(
    artefact_id: Annotated[str, typer.Argument(help="The artefact to review (id or 6+ character prefix).")],
    payload: Annotated[str, typer.Option("--payload", help="{} approves; anything else is feedback.")] = "{}",
    name: NameOpt = None,
    operator: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a Review by human:<you>: feedback re-opens the producer's work, {} approves a pending review."""
    result = _run(name, operator, lambda c: c.inject_review(artefact_id, payload))
    if as_json:
        _json(result)
    else:
        success(sanitise_text(f"review {result.review_id} written on {result.target_id}: {result.effect}"))


# ---------------------------------------------------------------------------------------------- lease


def _lease_line(info: LeaseInfo | None) -> str:
    if info is None:
        return "control is free: the next change takes it"
    return (f"control held by {info.operator} since {_when(info.since_ms)} "
            f"(expires in {info.expires_in_ms // 1000} s unless refreshed)")


@lease_app.callback(invoke_without_command=True)
def lease_show(ctx: typer.Context, name: NameOpt = None, operator: AsOpt = None, as_json: JsonOpt = False) -> None:
    """Who holds control (same as ``lease show``)."""
    if ctx.invoked_subcommand is None:
        _show_lease(name, operator, as_json)


def _show_lease(name: str | None, operator: str | None, as_json: bool) -> None:
    info = _run(name, operator, lambda c: c.lease_holder(), read=True)
    if as_json:
        _json(info.model_dump(mode="json", exclude={"token"}) if info else None)
    else:
        _out(_lease_line(info))


@lease_app.command("show")
def lease_show_cmd(name: NameOpt = None, operator: AsOpt = None, as_json: JsonOpt = False) -> None:
    """Who holds control."""
    _show_lease(name, operator, as_json)


@lease_app.command("take")
def lease_take(
    force: Annotated[bool, typer.Option("--force", help="Take control from its current holder (audited).")] = False,
    ttl: Annotated[float, typer.Option("--ttl", help="Seconds until it lapses unless refreshed.")] = 60.0,
    name: NameOpt = None,
    operator: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Take control (others become read-only)."""
    if ttl < 1:
        raise InvalidInput("--ttl must be at least 1 second")
    info = _run(name, operator, lambda c: c.take_lease(force=force, ttl_s=ttl))
    _json(info.model_dump(mode="json", exclude={"token"})) if as_json else success(_lease_line(info))


@lease_app.command("release")
def lease_release(name: NameOpt = None, operator: AsOpt = None, as_json: JsonOpt = False) -> None:
    """Give control back."""
    ok = _run(name, operator, lambda c: c.release_lease())
    if as_json:
        _json({"released": ok})
    elif ok:
        success("control released")
    else:
        warn("you do not hold control")


# ---------------------------------------------------------------------------------------------- explain


def _explain_lines(e: Explanation) -> list[str]:
    head = f"claim {e.claim_id} ({e.status})" if e.claim_id else f"artefact {e.artefact_id} (no claim)"
    lines = [f"{head}: {'moving' if e.moving else 'not moving'}: {e.summary}"]
    for r in e.reasons:
        who = f" [waiting for: {', '.join(r.waiting_for)}]" if r.waiting_for else ""
        lines.append(f"  - {r.kind}: {r.message}{who}")
    return lines


def explain_cmd(
    ident: Annotated[str, typer.Argument(help="A claim or artefact id (or a 6+ character prefix).")],
    name: NameOpt = None,
    operator: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Why is this claim (or artefact) not moving? Missing bids, pending outputs, queues, holds."""
    result = _run(name, operator, lambda c: c.explain(ident), read=True)
    if as_json:
        _json(result)
        return
    for line in _explain_lines(result):
        _out(line)
