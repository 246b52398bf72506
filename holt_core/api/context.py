"""What every route of the approvals API shares: the instance's blackboard, holt.yml's settings and policy."""

from __future__ import annotations

from dataclasses import dataclass

from holt_core.api.settings import ApiSettings
from holt_core.blackboard import Blackboard
from holt_core.hitl.client import HitlClient
from holt_core.hitl.policy import HitlPolicy


@dataclass
class ApiContext:
    bb: Blackboard
    settings: ApiSettings
    # holt.yml's hitl: section, read from the file; None (no holt.yml) falls back to what the orchestrator
    # published, exactly as the CLI does.
    policy: HitlPolicy | None = None

    async def client(self) -> HitlClient:
        if self.policy is not None:
            return HitlClient(self.bb, self.policy)
        return await HitlClient.connect(self.bb)
