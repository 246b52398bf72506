"""What the debugging seam costs when no breakpoint is set: the hop benchmark with and without the gate.

Runs ``hop_latency``'s scenario alternately with the production default (``DebugGate``, nothing armed) and
with ``OpenGate`` (no gate logic), in ABBA order so a drifting machine favours neither, and prints for each
the median hop p50 (1 chain) and throughput (16 chains), the ratio debug/open, and the spread of the open
runs among themselves: a difference inside that spread is not a measurable cost.

    .venv/bin/python bench/seam_cost.py                   # 6 pairs, 300 hops per chain
    .venv/bin/python bench/seam_cost.py --pairs 10 --hops 200
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

from hop_latency import scenario

from holt_core.embedded_redis import resolve_redis_url


def _spread(values: list[float]) -> float:
    """Relative half-range of the middle of a sample: (q3 - q1) / 2 / median (0 for fewer than 4 values)."""
    if len(values) < 4:
        return 0.0
    q = statistics.quantiles(values, n=4)
    return (q[2] - q[0]) / 2 / statistics.median(values)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=6, help="open/debug pairs per scenario")
    parser.add_argument("--hops", type=int, default=300)
    parser.add_argument("--chains", type=int, default=16)
    args = parser.parse_args()
    url = resolve_redis_url(start=True)
    for chains, metric, label in ((1, "p50_ms", "hop p50 (ms)"), (args.chains, "hops_per_s", "hops/s")):
        got: dict[str, list[dict[str, float]]] = {"open": [], "debug": []}
        for i in range(args.pairs):
            order = ("open", "debug") if i % 2 == 0 else ("debug", "open")  # ABBA
            for gate in order:
                got[gate].append(await scenario(url, chains, args.hops, False, gate))
        for key, name in ((metric, label), ("orch_cpu_ms_per_hop", "orchestrator CPU (ms/hop)")):
            values = {gate: [r[key] for r in runs] for gate, runs in got.items()}
            med = {gate: statistics.median(v) for gate, v in values.items()}
            pairs = zip(values["open"], values["debug"], strict=True)
            slower = sum((d > o) == (key != "hops_per_s") for o, d in pairs)  # fewer hops/s is worse
            spread = _spread(values["open"]) * 100
            print(f"{chains:2d} chain(s), {name}: open={med['open']:.2f} debug={med['debug']:.2f} "
                  f"ratio debug/open={med['debug'] / med['open']:.3f}; spread of open +-{spread:.1f}%; "
                  f"debug worse in {slower}/{args.pairs} pairs  (open {[round(v, 2) for v in values['open']]}, "
                  f"debug {[round(v, 2) for v in values['debug']]})", flush=True)

if __name__ == "__main__":
    asyncio.run(main())
