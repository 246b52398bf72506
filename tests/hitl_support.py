"""Shared pieces of the HITL tests: workspaces with the test agents, an engine, waiting for requests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from holt_core.blackboard import Blackboard
from holt_core.config import parse_config
from holt_core.hitl.models import HitlRequest
from holt_core.hitl.requests import RequestStore, post_goal
from holt_core.models import Artefact, StructuralType, new_id
from tests.engine import Engine, make_workspace, python_agents

AGENTS = Path(__file__).resolve().parent / "hitl_agents.py"


# Two approvers (olivia, alice) for every risk level; a Design is high risk.
APPROVERS_POLICY = """\
  operators:
    olivia: [approver]
    alice: [approver]
  risk_levels:
    medium: {approvers: [approver]}
    high: {approvers: [approver]}
    critical: {approvers: [approver]}
  rules:
    - match: {artefact_type: Design}
      risk: high
"""


def config_text(agents: str, hitl: str = "", bid_timeout: str = "5s") -> str:
    text = f'version: "1.0"\norchestrator:\n  bid_timeout: {bid_timeout}\nagents:\n{agents}'
    if hitl:
        text += f"hitl:\n{hitl}"
    return python_agents(text)


def agent(name: str, mode: str, bids: str, *args: str) -> str:
    extra = "".join(f', "{a}"' for a in args)
    return (f"  {name}:\n    command: [\"python3\", \"agents.py\", \"{mode}\"{extra}]\n"
            f"    bid_script: [\"python3\", \"agents.py\", \"bid\", \"{bids}\"]\n")


def hitl_engine(tmp: Path, redis_url: str, instance: str, text: str) -> Engine:
    ws = make_workspace(tmp, files={"holt.yml": text, "agents.py": AGENTS.read_text()})
    return Engine(redis_url, instance, ws, parse_config(text))


async def start_goal(engine: Engine, goal: str = "build it", operator: str = "olivia") -> Artefact:
    """A goal started by ``operator`` (recorded for separation of duties)."""
    art = Artefact(id=new_id(), logical_id=new_id(), version=1, structural_type=StructuralType.STANDARD,
                   type="GoalDefined", payload=goal, source_artefacts=[], produced_by_role="user")
    return await post_goal(engine.boards[0], art, operator)


async def wait_request(bb: Blackboard, predicate: Callable[[HitlRequest], bool], within: float = 30.0) -> HitlRequest:
    """The first request (stored or arriving) that satisfies predicate; event-driven on hitl:events."""
    store = RequestStore(bb, parse_config(python_agents('version: "1.0"\nagents:\n  X:\n    command: [x]\n'
                                                        '    bidding_strategy: ignore\n')).hitl)
    async with bb.subscribe(bb.keys.hitl_events) as sub:
        async with asyncio.timeout(within):
            while True:
                ids = [str(k).rsplit(":", 1)[1] async for k in bb.redis.scan_iter(
                    match=f"holt:{bb.instance}:hitl:req:*", count=1000)]
                for req in await store.get_many(ids):
                    if predicate(req):
                        return req
                await sub.get_message(ignore_subscribe_messages=True, timeout=1.0)


def runs(engine: Engine) -> list[str]:
    path = engine.workspace / "runs.log"
    return path.read_text().splitlines() if path.exists() else []
