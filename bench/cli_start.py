"""How fast the commands people type all day answer: whole processes, timed from exec to exit.

The floor is ``python -c pass`` measured in the same run, interleaved with the commands (this machine drifts by
tens of percent); each command's median wall time and CPU time (user+sys, less sensitive to other load) are
printed with their ratios to the floor's. Targets (issue 14, on wall time):
``--version``/``--help`` within 8x, read commands within 16x.

    .venv/bin/python bench/cli_start.py              # 15 rounds
    .venv/bin/python bench/cli_start.py --rounds 5
    .venv/bin/python bench/cli_start.py --baseline /tmp/main-src   # also time another source tree, interleaved

Runs against a private embedded Redis in a temporary data dir (found through HOLT_DATA_DIR, as holt finds its
own), with one registered instance holding 10 artefacts, one open question, one open approval request and the
HITL policy a running orchestrator publishes. Warns when a package it times has no bytecode (this machine sets
PYTHONDONTWRITEBYTECODE: run ``python -m compileall`` on it first, or every start compiles it from source).
``--baseline DIR`` runs every holt command a second time from the holt_core in DIR (e.g. ``git archive main |
tar -x -C DIR``; packages put beside it there, such as another typer, win over the installed ones), through the
same entry point as the holt script.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import typer

import holt_core
from holt_core.blackboard import Blackboard, connect_redis
from holt_core.embedded_redis import EmbeddedRedis
from holt_core.hitl.models import HitlRequest, RequestKind
from holt_core.hitl.policy import HitlPolicy
from holt_core.instances import InstanceRecord, register
from holt_core.models import Artefact, StructuralType, new_id, now_ms

INSTANCE = "bench-cli"
HOLT = str(Path(sys.executable).parent / "holt")


async def populate(url: str) -> None:
    bb = Blackboard(connect_redis(url), INSTANCE)
    try:
        await bb.redis.set(bb.keys.hitl_policy, HitlPolicy().model_dump_json())  # as a running orchestrator does
        for n in range(10):
            await bb.create_artefact(Artefact(id=new_id(), logical_id=new_id(), version=1, type=f"Step{n}",
                                              structural_type=StructuralType.STANDARD, payload="x" * 100,
                                              produced_by_role="user"))
        # holt list shows it (stopped: no supervisor runs); questions and pending each list one request.
        await register(bb.redis, InstanceRecord(name=INSTANCE, run_id="bench", workspace_path="/tmp/bench",
                                                started_at=datetime.now(UTC).isoformat()))
        for kind in (RequestKind.QUESTION, RequestKind.APPROVAL):
            req = HitlRequest(id=new_id(), kind=kind, created_ms=now_ms(), role="coder", text="Which database?",
                              action="deploy", target="prod", risk="high", digest="0" * 64)
            await bb.redis.hset(bb.keys.hitl_request(req.id), mapping=req.to_hash())
            await bb.redis.zadd(bb.keys.hitl_open, {req.id: req.created_ms})
    finally:
        await bb.close()


# What the holt console script runs, for a source tree put first on PYTHONPATH.
_ENTRY = "import sys; from holt_core.cli.main import run; sys.argv[0] = 'holt'; sys.exit(run())"


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user+sys, from the child's rusage: less noisy on a shared machine)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[1:])} failed ({done.returncode}): {done.stderr.decode()[-400:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def warn_without_bytecode(*packages: object) -> None:
    for package in packages:
        source = str(getattr(package, "__file__", ""))
        if source and not os.path.exists(importlib.util.cache_from_source(source)):
            print(f"warning: {source} has no bytecode (python -m compileall -q {os.path.dirname(source)})",
                  file=sys.stderr)


def main() -> None:
    warn_without_bytecode(typer, holt_core)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--baseline", type=Path, help="Also time holt from this source tree (holding holt_core/).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="holt-bench-cli-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        status = server.start()
        assert status.url is not None
        try:
            asyncio.run(populate(status.url))
            # As people run holt: it finds its private Redis through the data dir (and checks it answers).
            env = {**os.environ, "HOLT_DATA_DIR": str(server.data_dir), "NO_COLOR": "1"}
            env.pop("HOLT_OPERATOR", None)
            env.pop("HOLT_REDIS_URL", None)
            cases: dict[str, list[str]] = {
                "python -c pass (floor)": [sys.executable, "-c", "pass"],
                "holt --version": [HOLT, "--version"],
                "holt --help": [HOLT, "--help"],
                "holt questions": [HOLT, "questions", "--name", INSTANCE],
                "holt pending": [HOLT, "pending", "--name", INSTANCE],
                "holt list": [HOLT, "list"],
                "holt hoard": [HOLT, "hoard", "--name", INSTANCE],
            }
            envs = {name: env for name in cases}
            if args.baseline is not None:
                base_env = {**env, "PYTHONPATH": str(args.baseline.resolve())}
                for name, argv in list(cases.items())[1:]:
                    cases[f"{name} (baseline)"] = [sys.executable, "-c", _ENTRY, *argv[1:]]
                    envs[f"{name} (baseline)"] = base_env
            times: dict[str, list[float]] = {name: [] for name in cases}
            cpu: dict[str, list[float]] = {name: [] for name in cases}
            load_before = os.getloadavg()[0]
            for _ in range(args.rounds):  # interleaved: drift hits every command alike
                for name, argv in cases.items():
                    wall, used = timed(argv, envs[name])
                    times[name].append(wall)
                    cpu[name].append(used)
            load_after = os.getloadavg()[0]
        finally:
            server.stop()
    floor = statistics.median(times["python -c pass (floor)"])
    floor_cpu = statistics.median(cpu["python -c pass (floor)"])
    print(f"rounds: {args.rounds}; load average (1 min) {load_before:.1f} before, {load_after:.1f} after")
    print(f"{'command':<37} {'wall':>9} {'ratio':>7} {'CPU':>9} {'ratio':>7}")
    for name, values in times.items():
        median, used = statistics.median(values), statistics.median(cpu[name])
        print(f"{name:<37} {median * 1000:>6.0f} ms {median / floor:>6.1f}x {used * 1000:>6.0f} ms "
              f"{used / floor_cpu:>6.1f}x")


if __name__ == "__main__":
    main()
