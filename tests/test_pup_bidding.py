"""How a pup bids (protocol 5.3), against a real redis-server."""

from __future__ import annotations

from pathlib import Path

from holt_core.blackboard import Blackboard
from holt_core.config import parse_config
from holt_core.models import Claim, ClaimStatus, new_id
from holt_core.pup import Pup

CONFIG = """
version: "1.0"
agents:
  Coder:
    command: ["true"]
    bidding_strategy: exclusive
"""


async def test_a_static_strategy_bids_without_reading_the_target(bb: Blackboard, tmp_path: Path) -> None:
    pup = Pup(bb, parse_config(CONFIG), "Coder", tmp_path)
    # The target does not exist: a pup that read it would fall back to "ignore".
    claim = Claim(id=new_id(), artefact_id=new_id(), status=ClaimStatus.PENDING_REVIEW)
    await bb.create_claim(claim)
    await pup._bid(claim)
    assert await bb.get_bids(claim.id) == {"Coder": "exclusive"}
