"""/healthz, /readyz and /metrics of real orchestrator and pup processes; ``holt health``; ``holt up`` waiting."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as sync_redis
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from holt_core.blackboard import connect_redis
from holt_core.embedded_redis import EmbeddedRedis, ServerStatus, find_redis_server_binary
from holt_core.health import (
    STALE_AFTER_S,
    HealthService,
    Probe,
    Snapshot,
    judge,
    parse_health_check,
    probe_components,
)
from holt_core.keys import Keys
from tests.engine import make_workspace, poll, python_agents

HOLT = str(Path(sys.executable).parent / "holt")
DONE = ("import json; print(json.dumps({'artefact_type': 'Done', 'artefact_payload': 'ok', 'summary': 'ok', "
        "'structural_type': 'Terminal'}))")


def config(health_check: str = "") -> str:
    return python_agents(f"""\
version: "1.0"
agents:
  Echo:
    command: ["python3", "-c", "{DONE}"]
    bidding_strategy: exclusive
{health_check}""")


FAILING_CHECK = """    health_check:
      command: ["python3", "-c", "import sys; print('disk full'); sys.exit(3)"]
      interval: 1s
      timeout: 5s
"""


# ---------------------------------------------------------------------------------------------
# The verdict rule


def snapshot(**changes: Any) -> Snapshot:
    base: dict[str, Any] = dict(component="orchestrator", redis=Probe(True), beat_age_s=0.5, stuck_after_s=30,
                                is_orchestrator=True, ready_seen=True, lock_lost=False, lock=Probe(True, "held"),
                                custom=None)
    return Snapshot(**{**base, **changes})


def test_judge_healthy_and_ready() -> None:
    verdict = judge(snapshot())
    assert verdict.healthy and verdict.ready and verdict.problems == []


@pytest.mark.parametrize("changes, problem", [
    ({"redis": Probe(False, "Redis unreachable: refused")}, "redis: Redis unreachable: refused"),
    ({"beat_age_s": 31.0}, "loop: last beat 31.0 s ago (stuck: over 30 s)"),
    ({"lock_lost": True}, "lock: the instance lock was lost"),
    ({"lock": Probe(False, "held by other")}, "lock: held by other"),
    ({"is_orchestrator": False, "custom": Probe(False, "health check failed (exit 3)"), "custom_configured": True},
     "health_check: health check failed (exit 3)"),
])
def test_judge_unhealthy(changes: dict[str, Any], problem: str) -> None:
    verdict = judge(snapshot(**changes))
    assert not verdict.healthy and not verdict.ready and verdict.problems == [problem]


def test_a_check_not_run_yet_is_healthy_but_not_ready() -> None:
    verdict = judge(snapshot(is_orchestrator=False, custom=None, custom_configured=True))
    assert verdict.healthy and not verdict.ready


def test_not_ready_before_the_ready_event() -> None:
    verdict = judge(snapshot(ready_seen=False, lock=None))
    assert verdict.healthy and not verdict.ready


def test_health_check_forms() -> None:
    assert parse_health_check(None, "a") is None
    spec = parse_health_check({"command": ["true"], "interval": "2s", "timeout": 1}, "a")
    assert spec is not None and spec.argv() == ["true"] and spec.interval == 2 and spec.timeout == 1
    shell = parse_health_check("test -f x", "a")
    assert shell is not None and shell.argv() == ["/bin/sh", "-c", "test -f x"]


# ---------------------------------------------------------------------------------------------
# Real processes


class Components:
    """``holt orchestrator`` and ``holt pup`` run directly (as a supervisor would), killed at the end."""

    def __init__(self, ws: Path, url: str, instance: str) -> None:
        self.ws, self.url, self.instance = ws, url, instance
        self.env = {**os.environ, "HOLT_REDIS_URL": url, "HOLT_HEALTH_STUCK_S": "30"}
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> None:
        self.procs.append(subprocess.Popen([HOLT, *args, "--instance", self.instance, "--workspace", str(self.ws)],
                                           env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def endpoints(url: str, instance: str, count: int) -> dict[str, str]:
    found: dict[str, str] = {}

    async def registered() -> bool:
        client = connect_redis(url)
        try:
            raw = await client.hgetall(Keys(instance).health_endpoints)
        finally:
            await client.aclose()
        found.update({k.partition("@")[0]: json.loads(v)["url"] for k, v in raw.items()})
        return len(found) >= count

    await poll(registered, 20, "both components to register their health endpoints")
    return found


async def status_of(url: str, path: str = "/healthz") -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5) as client:
        reply = await client.get(url + path)
        return reply.status_code, reply.json()


async def wait_status(url: str, code: int, within: float = 20, path: str = "/healthz") -> dict[str, Any]:
    last: dict[str, Any] = {}

    async def check() -> bool:
        nonlocal last
        status, last = await status_of(url, path)
        return status == code

    await poll(check, within, f"{url}{path} to answer {code} (last: {last})")
    return last


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[EmbeddedRedis, ServerStatus]]:
    """A redis-server of this test only (the suite's shared one is never stopped)."""
    server = EmbeddedRedis(tmp_path / "redis")
    status = server.start()
    try:
        yield server, status
    finally:
        server.stop()


def restart_on_same_port(server: EmbeddedRedis, status: ServerStatus) -> subprocess.Popen[bytes]:
    """The same data, address and password again (EmbeddedRedis.start would pick a new port)."""
    assert status.port is not None and status.url is not None
    password = status.url.split(":", 2)[2].split("@", 1)[0]
    return server._launch(find_redis_server_binary(), status.port, password)


async def test_healthz_follows_redis_down_and_back(
    tmp_path: Path, private_redis: tuple[EmbeddedRedis, ServerStatus]
) -> None:
    server, status = private_redis
    assert status.url is not None
    ws = make_workspace(tmp_path, files={"holt.yml": config()})
    comps = Components(ws, status.url, f"t-{uuid.uuid4().hex[:10]}")
    relaunched: subprocess.Popen[bytes] | None = None
    try:
        comps.start("orchestrator")
        comps.start("pup", "--agent", "Echo")
        urls = await endpoints(status.url, comps.instance, 2)
        assert set(urls) == {"orchestrator", "Echo"}
        for url in urls.values():
            body = await wait_status(url, 200)
            assert body["healthy"] is True
            await wait_status(url, 200, path="/readyz")
        orchestrator = await wait_status(urls["orchestrator"], 200)
        assert orchestrator["checks"]["lock"] == {"ok": True, "detail": "held"}
        server.stop()
        for url in urls.values():
            body = await wait_status(url, 503)
            assert body["healthy"] is False and body["checks"]["redis"]["ok"] is False
            assert "Redis unreachable" in body["checks"]["redis"]["detail"]
        relaunched = restart_on_same_port(server, status)
        for url in urls.values():
            body = await wait_status(url, 200, within=30)
            assert body["checks"]["redis"] == {"ok": True, "detail": "PONG"}
    finally:
        comps.stop()
        if relaunched is not None:
            relaunched.terminate()
            relaunched.wait(10)


async def test_a_failing_health_check_makes_its_pup_unhealthy(tmp_path: Path, redis_url: str, instance: str) -> None:
    ws = make_workspace(tmp_path, files={"holt.yml": config(FAILING_CHECK)})
    comps = Components(ws, redis_url, instance)
    try:
        comps.start("pup", "--agent", "Echo")
        url = (await endpoints(redis_url, instance, 1))["Echo"]
        body = await wait_status(url, 503)
        assert body["checks"]["health_check"] == {"ok": False, "detail": "health check failed (exit 3): disk full"}
        assert body["checks"]["redis"]["ok"] is True
        code, _ = await status_of(url, "/readyz")
        assert code == 503
    finally:
        comps.stop()
        client = sync_redis.Redis.from_url(redis_url)
        client.delete(Keys(instance).health_endpoints)
        client.close()


# ---------------------------------------------------------------------------------------------
# holt up / holt health / metrics through the CLI


def run(env: dict[str, str], cwd: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HOLT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
async def up_env(cli_env: dict[str, str], redis_url: str, instance: str) -> AsyncIterator[dict[str, str]]:
    env = {**cli_env, "HOLT_UP_HEALTH_TIMEOUT_S": "4"}
    yield env
    client = sync_redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"holt:{instance}:*"))
        if keys:
            client.delete(*keys)
        client.hdel("holt:instances", instance)
    finally:
        client.close()


def test_up_names_an_agent_that_is_not_healthy(tmp_path: Path, up_env: dict[str, str], instance: str) -> None:
    ws = make_workspace(tmp_path, files={"holt.yml": config(FAILING_CHECK)})
    result = run(up_env, ws, "up", "--name", instance)
    try:
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"instance '{instance}' failed to start: Echo is not healthy after 4 s" in result.stderr
        assert "Echo: health_check: health check failed (exit 3): disk full" in result.stderr
        listed = json.loads(run(up_env, ws, "list", "--json").stdout)
        assert instance not in [row["name"] for row in listed]
    finally:
        run(up_env, ws, "down", "--name", instance)


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


class OtlpReceiver:
    """An OTLP/HTTP trace receiver: what the components export when OTEL_EXPORTER_OTLP_ENDPOINT is set."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, bytes]] = []  # (service, span name, trace id)
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> OtlpReceiver:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _traces(self, request: web.Request) -> web.Response:
        body = ExportTraceServiceRequest.FromString(await request.read())
        for rs in body.resource_spans:
            service = next(a.value.string_value for a in rs.resource.attributes if a.key == "service.name")
            for ss in rs.scope_spans:
                self.spans.extend((service, span.name, span.trace_id) for span in ss.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")


async def test_health_metrics_and_traces_of_a_running_instance(tmp_path: Path, up_env: dict[str, str],
                                                               instance: str) -> None:
    ws = make_workspace(tmp_path, files={"holt.yml": config()})
    async with OtlpReceiver() as otlp:
        env = {**up_env, "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url, "OTEL_BSP_SCHEDULE_DELAY": "200"}
        result = await asyncio.to_thread(run, env, ws, "up", "--name", instance)
        assert result.returncode == 0, result.stdout + result.stderr
        try:
            await check_health_and_metrics(env, ws, instance)

            def both() -> bool:
                return {"holt-orchestrator", "holt-Echo"} <= {service for service, _, _ in otlp.spans} and \
                    any(name == "workflow" for _, name, _ in otlp.spans)

            await poll(both, 30, "spans from the orchestrator and the pup")
        finally:
            down = await asyncio.to_thread(run, env, ws, "down", "--name", instance)
            assert down.returncode == 0, down.stderr
    # One workflow, one trace, across the orchestrator's and the pup's processes.
    assert len({trace for _, _, trace in otlp.spans}) == 1
    assert ("holt-Echo", "tool Echo") in {(service, name) for service, name, _ in otlp.spans}


async def check_health_and_metrics(env: dict[str, str], ws: Path, instance: str) -> None:
    health = run(env, ws, "health", "--name", instance, "--json")
    assert health.returncode == 0, health.stderr
    rows = json.loads(health.stdout)
    healthy = sorted((r["component"], r["healthy"]) for r in rows)
    assert healthy == [("Echo", True), ("api", True), ("orchestrator", True)]
    assert all(r["url"].startswith("http://127.0.0.1:") for r in rows)
    table = run(env, ws, "health", "--name", instance)
    assert "orchestrator" in table.stdout and "healthy" in table.stdout
    urls = {r["component"]: r["url"] for r in rows}
    async with httpx.AsyncClient(timeout=5) as client:
        before = (await client.get(urls["orchestrator"] + "/metrics")).text
        assert metric(before, "holt_claims_created_total") == 0
        assert metric(before, "holt_component_healthy") == 1
        forage = await asyncio.to_thread(run, env, ws, "forage", "--goal", "hello", "--name", instance, "--watch")
        assert forage.returncode == 0, forage.stdout + forage.stderr
        after: dict[str, str] = {}

        async def moved() -> bool:
            after["o"] = (await client.get(urls["orchestrator"] + "/metrics")).text
            after["p"] = (await client.get(urls["Echo"] + "/metrics")).text
            return metric(after["o"], "holt_claims_closed_total", status="complete") >= 1 and \
                metric(after["p"], "holt_tool_runs_total", role="Echo", outcome="succeeded") >= 1

        await poll(moved, 20, "the counters to move")
    o, p = after["o"], after["p"]
    assert metric(o, "holt_claims_created_total") >= 1
    assert metric(o, "holt_phase_grants_total", phase="exclusive") >= 1
    assert metric(o, "holt_grants_total", phase="exclusive", agent="Echo") >= 1
    assert metric(o, "holt_bids_total", agent="Echo", bid_type="exclusive") >= 1
    assert metric(o, "holt_bid_latency_seconds_count", agent="Echo") >= 1
    assert metric(o, "holt_phase_duration_seconds_count", phase="exclusive") >= 1
    assert metric(p, "holt_tool_duration_seconds_count", role="Echo") >= 1
    assert metric(o, "holt_hitl_pending") == 0 and metric(o, "holt_claims_open") == 0
    assert metric(o, "holt_audit_verify_ok") == 1


async def test_health_lists_every_replica_of_a_role(redis_url: str, instance: str, cli_env: dict[str, str]) -> None:
    """Two pups of one role (replicas, e.g. a Deployment's pods) each have their row; a dead one's entry that
    nobody refreshes is left out."""
    replicas = [HealthService(redis_url, instance, "Echo", replica=name) for name in ("pod-a", "pod-b")]
    client = connect_redis(redis_url)
    key = Keys(instance).health_endpoints
    try:
        for service in replicas:
            await service.start()
        await poll(lambda: _count(client, key, 2), 20, "both replicas to register")
        old_ms = int((time.time() - STALE_AFTER_S - 5) * 1000)
        await client.hset(key, "Echo@pod-gone", json.dumps({"url": "http://127.0.0.1:9", "seen_ms": old_ms}))
        rows = await probe_components(client, instance)
        assert [(r.component, r.replica) for r in rows] == [("Echo", "pod-a"), ("Echo", "pod-b")]
        assert len({r.url for r in rows}) == 2
        result = await asyncio.to_thread(run, cli_env, Path.cwd(), "health", "--name", instance, "--json")
        listed = json.loads(result.stdout)
        assert sorted((r["component"], r["replica"]) for r in listed) == [("Echo", "pod-a"), ("Echo", "pod-b")]
        table = await asyncio.to_thread(run, cli_env, Path.cwd(), "health", "--name", instance)
        assert "Echo (pod-a)" in table.stdout and "Echo (pod-b)" in table.stdout
        await replicas[1].stop()
        assert [r.replica for r in await probe_components(client, instance)] == ["pod-a"]
    finally:
        for service in replicas:
            await service.stop()
        await client.delete(key)
        await client.aclose()


async def _count(client: Any, key: str, count: int) -> bool:
    return int(await client.hlen(key)) >= count
