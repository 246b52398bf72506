"""Orchestration hop latency and throughput: artefact -> claim -> 3 bids -> grant -> next artefact.

Every role runs in its own process, as ``holt up`` runs them: the orchestrator (the real one) and three
no-op agents (one bids exclusive, two ignore) that speak the pup's protocol through the same blackboard
client and answer a grant by writing the next artefact at once, so the figure is the orchestration cost,
not a tool's. Every process logs INFO events as JSON lines into its own file, as under ``holt up``
(``--quiet-logs``: warnings only). The "polling" variant collects bids by reading the bids hash every
100 ms, as the Go version does, instead of reacting to bid events.

    .venv/bin/python bench/hop_latency.py                 # all scenarios
    .venv/bin/python bench/hop_latency.py --hops 300 --chains 16 --repeat 5
    .venv/bin/python bench/hop_latency.py --gate open     # without the debugging gate (the seam's cost)

Uses HOLT_REDIS_URL if set, else the embedded Redis (started if needed).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing as mp
import os
import shutil
import statistics
import tempfile
import time
import uuid
from typing import Any

from holt_core.blackboard import Blackboard, connect_redis
from holt_core.config import parse_config
from holt_core.decisions import OpenGate
from holt_core.embedded_redis import resolve_redis_url
from holt_core.logs import EventLogger
from holt_core.models import Artefact, BidType, Claim, ClaimStatus, GrantNotification, StructuralType, new_id
from holt_core.orchestrator import Orchestrator

CONFIG = """
version: "1.0"
orchestrator:
  bid_timeout: 30s
agents:
  Worker:
    command: ["true"]
    bidding_strategy: exclusive
  WatcherA:
    command: ["true"]
    bidding_strategy: ignore
  WatcherB:
    command: ["true"]
    bidding_strategy: ignore
"""


def _run(coro: Any, *, profile_to: str | None = None) -> None:
    """Run a process's main loop the way holt runs it (plain asyncio); with ``profile_to``, under cProfile
    counting CPU time (not time spent waiting for Redis), stats there."""
    if profile_to:
        import cProfile

        with cProfile.Profile(time.process_time) as prof:
            asyncio.run(coro)
        prof.dump_stats(profile_to)
        return
    asyncio.run(coro)


def _logging(log_dir: str | None, name: str) -> None:
    """As ``holt up`` runs a process: INFO events as JSON lines into its own file; with no ``log_dir``,
    warnings only (to stderr), to see what the logging itself costs."""
    import logging

    from holt_core.logs import configure

    if log_dir is None:
        configure(level=logging.WARNING)
        return
    configure(open(os.path.join(log_dir, f"{name}.log"), "a", encoding="utf-8"), level=logging.INFO)


class PollingOrchestrator(Orchestrator):
    """Bids are found by reading each waiting claim's bids hash every 100 ms (the Go approach)."""

    def on_bid(self, data: dict[str, Any]) -> None:
        return None

    async def poll(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(0.1)
            for claim_id, rt in list(self.claims.items()):
                if rt.claim.phase_state is None:
                    rt.bids = await self.bb.get_bids(claim_id)
                    self.spawn(self.advance(claim_id))


def orchestrator_process(url: str, instance: str, polling: bool, ready: Any, stop: Any, cpu: Any,
                         gate: str = "debug", log_dir: str | None = None) -> None:
    async def main() -> None:
        bb = Blackboard(connect_redis(url), instance)
        cls = PollingOrchestrator if polling else Orchestrator
        # "debug": the production default (DebugGate, no breakpoint set); "open": no gate logic at all.
        orch = cls(bb, parse_config(CONFIG), gate=OpenGate() if gate == "open" else None)
        stop_event = asyncio.Event()
        task = asyncio.create_task(orch.run(stop_event))
        poller = asyncio.create_task(orch.poll(stop_event)) if isinstance(orch, PollingOrchestrator) else None
        await orch.ready.wait()
        baseline = time.process_time()  # imports and start-up are not orchestration
        ready.set()
        await asyncio.to_thread(stop.wait)  # a multiprocessing event, set by the driver
        stop_event.set()
        await task
        if poller:
            await poller
        await bb.close()
        cpu.value = time.process_time() - baseline

    _logging(log_dir, "orchestrator")
    _run(main(), profile_to=os.environ.get("HOLT_BENCH_PROFILE"))  # a path: a profile of the orchestrator


def agent_process(url: str, instance: str, role: str, bid: str, hops: int, ready: Any, stop: Any,
                  cpu: Any, log_dir: str | None = None) -> None:
    """One no-op agent per process (as real pups are): bid on every claim; the Worker answers grants.
    It logs what a pup logs for the same work (bid_submitted; tool_started and tool_succeeded)."""

    async def main() -> None:
        bb = Blackboard(connect_redis(url), instance)
        log = EventLogger("pup", instance)
        baseline = time.process_time()
        keys = bb.keys
        bid_type = BidType(bid)
        tasks: set[asyncio.Task[None]] = set()

        async def work(grant: GrantNotification) -> None:
            # As the pup does: one pipelined read when the notification names the target, else two.
            if grant.artefact_id:
                claim, target = await bb.get_claim_and_artefact(grant.claim_id, grant.artefact_id)
                if claim.artefact_id != target.id:  # the claim is the authority
                    target = await bb.get_artefact(claim.artefact_id)
            else:
                claim = await bb.get_claim(grant.claim_id)
                target = await bb.get_artefact(claim.artefact_id)
            log.info("tool_started", claim_id=claim.id, claim_type=grant.claim_type, context=0)
            chain, step = target.payload.split(":", 1)
            n = int(step) + 1
            ident = new_id()
            made = await bb.create_artefact(Artefact(
                id=ident, logical_id=ident, version=1,
                structural_type=StructuralType.TERMINAL if n >= hops else StructuralType.STANDARD,
                type="Step", payload=f"{chain}:{n}", source_artefacts=[target.id], produced_by_role=role,
            ))
            log.info("tool_succeeded", claim_id=claim.id, artefact_id=made.id, type=made.type)

        async def bid_on(claim_id: str) -> None:
            await bb.set_bid(claim_id, role, bid_type)
            log.info("bid_submitted", claim_id=claim_id, agent_name=role, bid_type=bid_type.value)

        def spawn(coro: Any) -> None:
            task = asyncio.ensure_future(coro)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        channels = [keys.claim_events] + ([keys.agent_events(role)] if bid_type == BidType.EXCLUSIVE else [])
        # The driver's stop, seen by a thread: checking a multiprocessing event per message costs a lock.
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        watcher = loop.run_in_executor(None, lambda: (stop.wait(), loop.call_soon_threadsafe(stopping.set)))
        def dispatch(channel: str, data: str) -> None:
            if channel == keys.claim_events:
                claim = Claim.from_json(data)
                if claim.status != ClaimStatus.PENDING_ASSIGNMENT:
                    spawn(bid_on(claim.id))
            else:
                spawn(work(GrantNotification.model_validate_json(data)))

        async with bb.subscribe(*channels) as sub:
            ready.set()
            sub.deliver_to(dispatch)  # as the pup does
            while not stopping.is_set():
                await sub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        await watcher
        await bb.close()
        with cpu.get_lock():
            cpu.value += time.process_time() - baseline

    # HOLT_BENCH_PROFILE_AGENT: a path for a profile of the Worker (or of HOLT_BENCH_PROFILE_ROLE).
    _logging(log_dir, role)
    profiled = role == os.environ.get("HOLT_BENCH_PROFILE_ROLE", "Worker")
    _run(main(), profile_to=os.environ.get("HOLT_BENCH_PROFILE_AGENT") if profiled else None)


async def scenario(url: str, chains: int, hops: int, polling: bool, gate: str = "debug",
                   logs: bool = True) -> dict[str, float]:
    instance = f"bench-{uuid.uuid4().hex[:8]}"
    log_dir = tempfile.mkdtemp(prefix="holt-bench-logs-") if logs else None
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    cpu = ctx.Value("d", 0.0)
    agents_cpu = ctx.Value("d", 0.0)
    procs = []
    readies = []
    orch_ready = ctx.Event()
    procs.append(ctx.Process(target=orchestrator_process,
                             args=(url, instance, polling, orch_ready, stop, cpu, gate, log_dir)))
    readies.append(orch_ready)
    for role, bid in (("Worker", "exclusive"), ("WatcherA", "ignore"), ("WatcherB", "ignore")):
        ready = ctx.Event()
        procs.append(ctx.Process(target=agent_process, args=(url, instance, role, bid, hops, ready, stop, agents_cpu,
                                                                  log_dir)))
        readies.append(ready)
    for proc in procs:
        proc.start()
    bb = Blackboard(connect_redis(url), instance)
    arrivals: dict[str, list[float]] = {}
    try:
        for ready in readies:
            await asyncio.to_thread(ready.wait, 60)
        async with bb.subscribe(bb.keys.artefact_events) as sub:
            started = time.perf_counter()
            for c in range(chains):
                ident = new_id()
                await bb.create_artefact(Artefact(
                    id=ident, logical_id=new_id(), version=1, structural_type=StructuralType.STANDARD,
                    type="Step", payload=f"c{c}:0", source_artefacts=[], produced_by_role="user"))
            finished = asyncio.Event()
            left = chains
            ended = 0.0

            def arrived(_channel: str, data: str) -> None:
                # Timed on arrival; plain JSON, not the model: the driver shares the cores with what it measures.
                nonlocal left, ended
                now = time.perf_counter()
                art = json.loads(data)
                arrivals.setdefault(art["payload"].split(":", 1)[0], []).append(now)
                if art["structural_type"] == StructuralType.TERMINAL:
                    left -= 1
                    if not left:
                        ended = now
                        finished.set()

            sub.deliver_to(arrived)
            async with asyncio.timeout(600):
                while not finished.is_set():  # the loop that surfaces a lost connection or a failed callback
                    await sub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            elapsed = ended - started
    finally:
        stop.set()
        for proc in procs:
            await asyncio.to_thread(proc.join, 30)
        keys = [k async for k in bb.redis.scan_iter(match=f"holt:{instance}:*", count=1000)]
        for i in range(0, len(keys), 1000):
            await bb.redis.delete(*keys[i : i + 1000])
        await bb.close()
        if log_dir is not None:
            shutil.rmtree(log_dir, ignore_errors=True)
    deltas = sorted(
        (b - a) * 1000 for times in arrivals.values() for a, b in itertools.pairwise(times)
    )
    return {
        "p50_ms": statistics.median(deltas),
        "p99_ms": deltas[min(len(deltas) - 1, int(len(deltas) * 0.99))],
        "hops_per_s": len(deltas) / elapsed,
        "orch_cpu_ms_per_hop": cpu.value * 1000 / len(deltas),
        "agents_cpu_ms_per_hop": agents_cpu.value * 1000 / len(deltas),
        "hops": len(deltas),
    }


def reference_loop_ms() -> float:
    """The machine's speed right now: a fixed pure-Python loop, median of 5, in ms (lower is faster).
    This machine's CPU speed drifts by tens of percent within minutes; figures are comparable only
    between runs whose reference times are close."""

    def once() -> float:
        started = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i * i % 7
        return (time.perf_counter() - started) * 1000

    return statistics.median(once() for _ in range(5))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hops", type=int, default=300, help="hops per chain (event-driven runs)")
    parser.add_argument("--poll-hops", type=int, default=30, help="hops per chain for the 100 ms polling variant")
    parser.add_argument("--chains", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--gate", choices=["debug", "open"], default="debug",
                        help="debug: the default DebugGate with no breakpoint; open: no gate logic")
    parser.add_argument("--event-only", action="store_true", help="skip the polling variants")
    parser.add_argument("--quiet-logs", action="store_true",
                        help="log warnings only (default: INFO events into a file per process, as holt up does)")
    args = parser.parse_args()
    url = resolve_redis_url(start=True)
    rows = [
        ("event-driven, 1 chain", 1, args.hops, False),
        (f"event-driven, {args.chains} chains", args.chains, args.hops, False),
        ("polling 100 ms, 1 chain", 1, args.poll_hops, True),
        (f"polling 100 ms, {args.chains} chains", args.chains, args.poll_hops, True),
    ]
    if args.event_only:
        rows = rows[:2]
    results: dict[str, list[dict[str, float]]] = {}
    print(f"reference loop before: {reference_loop_ms():.1f} ms", flush=True)
    for name, chains, hops, polling in rows:
        runs = []
        for _ in range(args.repeat if not polling else max(1, args.repeat // 2)):
            runs.append(await scenario(url, chains, hops, polling, args.gate, logs=not args.quiet_logs))
        results[name] = runs
        med = {k: statistics.median(r[k] for r in runs)
               for k in ("p50_ms", "p99_ms", "hops_per_s", "orch_cpu_ms_per_hop", "agents_cpu_ms_per_hop")}
        print(f"{name:32s} runs={len(runs)} hop p50={med['p50_ms']:.2f} ms  p99={med['p99_ms']:.2f} ms  "
              f"throughput={med['hops_per_s']:.0f} hops/s  CPU/hop: orchestrator={med['orch_cpu_ms_per_hop']:.2f} ms "
              f"3 agents={med['agents_cpu_ms_per_hop']:.2f} ms",
              flush=True)
    print(f"reference loop after: {reference_loop_ms():.1f} ms", flush=True)
    if args.event_only:
        return
    ev1 = statistics.median(r["p50_ms"] for r in results["event-driven, 1 chain"])
    po1 = statistics.median(r["p50_ms"] for r in results["polling 100 ms, 1 chain"])
    evn = statistics.median(r["hops_per_s"] for r in results[f"event-driven, {args.chains} chains"])
    pon = statistics.median(r["hops_per_s"] for r in results[f"polling 100 ms, {args.chains} chains"])
    print(f"ratio polling/event p50 (1 chain): {po1 / ev1:.0f}x; "
          f"throughput event/polling ({args.chains} chains): {evn / pon:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
