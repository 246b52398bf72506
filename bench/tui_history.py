"""holt-tui time travel at scale: build the timeline of a model with N artefacts (and a claim on each), then
the model of one moment (what one [ or ] costs), in process, without Redis.

    .venv/bin/python bench/tui_history.py                 # 100k artefacts
    .venv/bin/python bench/tui_history.py --artefacts 20000
"""

from __future__ import annotations

import argparse
import time

from holt_core.artefact_record import ArtefactRecord
from holt_core.models import Claim, ClaimStatus, Phase, PhaseState, StructuralType
from holt_tui.feed import ClaimState, ScanPage
from holt_tui.model import LiveModel
from holt_tui.timeline import build_timeline

PER_WORKFLOW = 100


def uid(n: int, kind: int = 0) -> str:
    return f"{n:08x}-{kind:04x}-4000-8000-{n:012x}"


def loaded_model(n: int) -> LiveModel:
    t0 = 1_767_225_600_000
    artefacts = []
    claims = []
    for i in range(n):
        source = () if i % PER_WORKFLOW == 0 else (uid(i - 1),)
        a = ArtefactRecord(uid(i), uid(i, 1), 1, StructuralType.STANDARD, f"Step{i % 7}", '{"n": 1}', source,
                           "Drafter", t0 + i * 1000)
        artefacts.append(a)
        status = ClaimStatus.COMPLETE if i % 10 else ClaimStatus.PENDING_EXCLUSIVE
        ps = PhaseState(current=Phase.EXCLUSIVE, granted_agents=["Formatter"], all_bids={"Formatter": "exclusive"},
                        start_time_ms=t0 + i * 1000 + 200)
        claims.append(ClaimState(Claim(id=uid(i, 2), artefact_id=a.id, status=status, phase_state=ps),
                                 {"Formatter": "exclusive"}))
    model = LiveModel("bench")
    model.apply_all([ScanPage(artefacts, claims, first=True, last=True, total_hint=n)])
    model.rows()
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--artefacts", type=int, default=100_000)
    args = parser.parse_args()
    model = loaded_model(args.artefacts)
    start = time.perf_counter()
    timeline = build_timeline(model)
    built = time.perf_counter() - start
    print(f"{args.artefacts:,} artefacts, {len(timeline):,} changes: timeline built in {built:.2f} s")
    for k in (len(timeline), len(timeline) // 2, 10):
        start = time.perf_counter()
        m = timeline.model_at(k)
        m.rows()
        print(f"  model at change {k:,} ({len(m.artefacts):,} artefacts): {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
