"""Shared pieces of the debugging tests: a recipe workspace and waiting on the debug state."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from holt_core.blackboard import Blackboard
from holt_core.config import parse_config
from holt_core.debug.client import DebugClient
from holt_core.debug.held import HeldDecision
from holt_core.models import Artefact, StructuralType, new_id
from tests.engine import EXAMPLES, Engine, make_workspace, poll, python_agents

RECIPE = EXAMPLES / "recipe" / "holt.yml"


def recipe_engine(tmp_path: Path, redis_url: str, instance: str, *, extra_files: dict[str, str] | None = None,
                  transform: Callable[[str], str] | None = None, **replace: str) -> Engine:
    """The recipe example; its drafter also drafts for any goal type ending in "Goal" (two workflows)."""
    text = python_agents(RECIPE.read_text())
    text = text.replace('"GoalDefined=exclusive"', '"GoalDefined=exclusive", "SpecialGoal=exclusive"')
    for old, new in replace.items():
        text = text.replace(old, new)
    if transform is not None:
        text = transform(text)
    drafter = (EXAMPLES / "recipe" / "agents" / "drafter.py").read_text().replace(
        'if target["type"] == "GoalDefined":', 'if target["type"] in ("GoalDefined", "SpecialGoal"):')
    files = {"holt.yml": text, "agents/drafter.py": drafter, **(extra_files or {})}
    ws = make_workspace(tmp_path, example="recipe", files=files)
    return Engine(redis_url, instance, ws, parse_config(text))


async def goal(bb: Blackboard, text: str, type_: str = "GoalDefined") -> Artefact:
    ident = new_id()
    return await bb.create_artefact(Artefact(id=ident, logical_id=new_id(), version=1,
                                             structural_type=StructuralType.STANDARD, type=type_, payload=text,
                                             source_artefacts=[], produced_by_role="user"))


async def wait_held(client: DebugClient, predicate: Callable[[HeldDecision], bool], within: float = 30.0,
                    ) -> HeldDecision:
    found: list[HeldDecision] = []

    async def check() -> bool:
        found[:] = [h for h in await client.held() if h.release is None and predicate(h)]
        return bool(found)

    await poll(check, within)
    return found[0]


async def claim_revs(bb: Blackboard) -> dict[str, int]:
    """Every claim and its revision: each orchestration write bumps exactly one claim's revision."""
    ids = [c async for c in bb.scan_claim_ids()]
    out: dict[str, int] = {}
    for claim_id in ids:
        rev = await bb.redis.hget(bb.keys.claim(claim_id), "holt_rev")
        out[claim_id] = int(rev or 0)
    return out


def changed(before: dict[str, int], after: dict[str, int]) -> dict[str, tuple[int, int]]:
    return {c: (before.get(c, 0), r) for c, r in after.items() if before.get(c, 0) != r}
