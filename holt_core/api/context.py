"""What every route of the approvals API shares: the instance's blackboard, holt.yml's settings and policy."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from holt_core.api.settings import ApiSettings
from holt_core.blackboard import Blackboard
from holt_core.hitl.client import HitlClient
from holt_core.hitl.policy import HitlPolicy
from holt_core.operators import operator_url


@dataclass
class ApiContext:
    bb: Blackboard  # the API's own connection (admin): reads, the operator registry, Slack acts
    settings: ApiSettings
    # holt.yml's hitl: section, read from the file; None (no holt.yml) falls back to what the orchestrator
    # published, exactly as the CLI does.
    policy: HitlPolicy | None = None
    redis_url: str = ""  # the URL ``bb`` connects with; operators' own connections are derived from it

    async def client(self, bb: Blackboard | None = None, *, impersonated_by: str = "") -> HitlClient:
        board = bb or self.bb
        if self.policy is not None:
            return HitlClient(board, self.policy, impersonated_by=impersonated_by)
        return await HitlClient.connect(board, impersonated_by=impersonated_by)

    @contextlib.asynccontextmanager
    async def as_operator(self, name: str, token: str) -> AsyncIterator[HitlClient]:
        """A client connected to Redis as the operator's own user: the proof of the act is Redis-checked."""
        bb = Blackboard.from_url(operator_url(self.redis_url, name, token), self.bb.instance)
        try:
            yield await self.client(bb)
        finally:
            await bb.close()
