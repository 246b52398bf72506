"""Surviving a Redis restart: `holt redis stop --force` / `start` under a running instance (issue 11, part 4).

The restart tests run their own private Redis in a tmp data dir (``HOLT_DATA_DIR``, no ``HOLT_REDIS_URL``),
exactly as a user's `holt up` finds it; the session's shared server is never stopped. Real processes
throughout: `holt up`, the supervisor, orchestrator and pups, `holt redis`, `holt forage`, `holt list`.
"""

from __future__ import annotations

import os
import signal
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from holt_core.embedded_redis import EmbeddedRedis
from holt_core.supervisor import ComponentState, SupervisorState, describe, exit_reason
from tests.engine import make_workspace, python_agents
from tests.test_cli_lifecycle import ONE_AGENT, Instance, holt, instance_pids, listed, poll, take_down

# One agent; a goal whose payload is "slow" keeps its tool busy for a while (the restart happens meanwhile).
SLOW_OR_FAST = python_agents("""\
version: "1.0"
agents:
  Echo:
    command: ["python3", "-c", "import json, sys, time; goal = json.load(sys.stdin)['target_artefact']['payload']; \
time.sleep(4 if goal == 'slow' else 0); print(json.dumps({'artefact_type': 'Done', 'artefact_payload': goal, \
'summary': 'ok', 'structural_type': 'Terminal'}))"]
    bidding_strategy: exclusive
""")


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[EmbeddedRedis, dict[str, str]]]:
    """A private Redis of this test's own, and the environment in which holt finds it (and only it)."""
    server = EmbeddedRedis(tmp_path / "redis")
    env = {k: v for k, v in os.environ.items() if k != "HOLT_REDIS_URL"}
    env.update(HOLT_DATA_DIR=str(server.data_dir), NO_COLOR="1", COLUMNS="200")
    try:
        yield server, env
    finally:
        server.stop()


def _client(server: EmbeddedRedis) -> redis.Redis:
    url = server.remembered_url()
    assert url is not None
    return redis.Redis.from_url(url, decode_responses=True)


def test_goal_reaches_terminal_after_a_redis_restart_without_down_up(
        tmp_path: Path, private_redis: tuple[EmbeddedRedis, dict[str, str]]) -> None:
    server, env = private_redis
    inst = Instance(f"t-{uuid.uuid4().hex[:10]}", make_workspace(tmp_path, files={"holt.yml": SLOW_OR_FAST}), env)
    try:
        up = holt(env, inst.ws, "up", "--name", inst.name)
        assert up.returncode == 0, up.stdout + up.stderr
        before = server.status()
        components = {name: c.pid for name, c in inst.state().components.items()}

        # Mid-workflow: a goal whose tool is running when Redis goes away.
        assert holt(env, inst.ws, "forage", "--goal", "slow", "--name", inst.name).returncode == 0
        with _client(server) as client:
            poll(lambda: list(client.scan_iter(match=f"holt:{inst.name}:exec:*:Echo")), "the tool to start")

        refused = holt(env, inst.ws, "redis", "stop")
        assert refused.returncode == 1
        assert "run on this Redis" in refused.stderr and inst.name in refused.stderr
        assert server.status().running

        stopped = holt(env, inst.ws, "redis", "stop", "--force")
        assert stopped.returncode == 0, stopped.stderr
        assert f"instance '{inst.name}' keeps running" in stopped.stderr
        assert not server.status().running
        # A component that dies while Redis is away is not restarted into a crash loop: it waits for Redis.
        os.kill(components.pop("Echo"), signal.SIGKILL)
        poll(lambda: inst.state().components["Echo"].status == "waiting_for_redis", "the pup to wait for Redis")
        assert inst.state().components["Echo"].starts == 1
        started = holt(env, inst.ws, "redis", "start")
        assert started.returncode == 0, started.stderr
        after = server.status()
        assert after.pid != before.pid and after.url == before.url  # same port, same password
        poll(lambda: inst.state().components["Echo"].ready, "the pup to be restarted once Redis is back")
        assert inst.state().components["Echo"].starts == 2

        # A new goal goes all the way, with no down/up.
        done = holt(env, inst.ws, "forage", "--goal", "fast", "--name", inst.name, "--watch", timeout=90)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Workflow completed: Terminal artefact created" in done.stdout
        # The others reconnected on their own: not one of them was restarted.
        assert {name: c.pid for name, c in inst.state().components.items() if name in components} == components
        poll(lambda: describe(inst.state()) == "Running", "every component to be back")
        assert [row["status"] for row in listed(inst)] == ["Running"]
    finally:
        take_down(inst)


def test_components_follow_redis_to_a_new_port(
        tmp_path: Path, private_redis: tuple[EmbeddedRedis, dict[str, str]]) -> None:
    server, env = private_redis
    inst = Instance(f"t-{uuid.uuid4().hex[:10]}", make_workspace(tmp_path, files={"holt.yml": SLOW_OR_FAST}), env)
    squatter = socket.socket()
    try:
        up = holt(env, inst.ws, "up", "--name", inst.name)
        assert up.returncode == 0, up.stdout + up.stderr
        old_port = server.status().port
        assert old_port is not None
        components = {name: c.pid for name, c in inst.state().components.items()}

        assert holt(env, inst.ws, "redis", "stop", "--force").returncode == 0
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", old_port))  # another program takes the port meanwhile
        squatter.listen()
        started = holt(env, inst.ws, "redis", "start")
        assert started.returncode == 0, started.stderr
        assert f"port {old_port} is taken" in started.stderr
        assert server.status().port != old_port

        def moved() -> bool:  # every component restarted by the supervisor, on the new address, and ready
            state = inst.state().components
            return all(state[n].pid != pid and state[n].ready for n, pid in components.items())

        poll(moved, "the components to restart on the new port", timeout=60)
        assert "redis_address_changed" in (inst.log_dir / "supervisor.log").read_text()
        done = holt(env, inst.ws, "forage", "--goal", "fast", "--name", inst.name, "--watch", timeout=90)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Workflow completed: Terminal artefact created" in done.stdout
    finally:
        take_down(inst)
        squatter.close()


def test_list_is_not_running_while_a_component_crash_loops(tmp_path: Path, cli_env: dict[str, str]) -> None:
    inst = Instance(f"t-{uuid.uuid4().hex[:10]}", make_workspace(tmp_path, files={"holt.yml": ONE_AGENT}), cli_env)
    config = inst.ws / "holt.yml"
    try:
        up = holt(inst.env, inst.ws, "up", "--name", inst.name)
        assert up.returncode == 0, up.stdout + up.stderr
        assert [row["status"] for row in listed(inst)] == ["Running"]

        # From now on the pup cannot start: its agent is no longer in holt.yml.
        config.write_text(ONE_AGENT.replace("Echo:", "Renamed:"))
        os.kill(inst.state().components["Echo"].pid, signal.SIGKILL)

        # Polled on the state file (a `holt list` costs a process start); then asked of `holt list` itself.
        poll(lambda: inst.state().components["Echo"].exits >= 2 and inst.state().components["Echo"].reason,
             "the pup to crash-loop", timeout=40)
        status = listed(inst)[0]["status"]
        assert status.startswith("degraded (Echo restarting") and "not defined in holt.yml" in status, status
        table = holt(inst.env, inst.ws, "list")
        assert "Running" not in table.stdout and "degraded (Echo restarting" in table.stdout

        config.write_text(ONE_AGENT)  # fixed: the next restart comes up, and so does the status
        poll(lambda: describe(inst.state()) == "Running", "the pup to come up for good", timeout=60)
        assert [row["status"] for row in listed(inst)] == ["Running"]
    finally:
        take_down(inst)
        assert not instance_pids(inst.name)


# ---------------------------------------------------------------------------------------------
# The status rule, without processes


def _state(status: str = "running", **components: ComponentState) -> SupervisorState:
    return SupervisorState(instance="i", run_id="r", supervisor_pid=1, status=status,  # type: ignore[arg-type]
                           updated_at="", components=components)


NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("state", "expected"), [
    (_state(orchestrator=ComponentState(ready=True, status="ready")), "Running"),
    (_state("starting", orchestrator=ComponentState()), "Starting"),
    (_state(orchestrator=ComponentState(exits=3, status="restarting", reason="connection refused")),
     "degraded (orchestrator restarting: connection refused)"),
    (_state(orchestrator=ComponentState(status="waiting_for_redis", reason="connection refused")),
     "degraded (orchestrator waiting for Redis: connection refused)"),
    (_state(orchestrator=ComponentState(ready=True, status="reconnecting")),
     "degraded (orchestrator reconnecting to Redis)"),
    # Up for a moment between two crashes: still a crash loop.
    (_state(Echo=ComponentState(ready=True, status="ready", quick_exits=3, started_at="2026-01-01T11:59:58Z",
                                reason="boom")), "degraded (Echo crash-looping (3 quick exits): boom)"),
    (_state(Echo=ComponentState(ready=True, status="ready", quick_exits=3, started_at="2026-01-01T11:00:00Z")),
     "Running"),
    (_state("starting", orchestrator=ComponentState(exits=2, status="restarting")),
     "degraded (orchestrator restarting)"),
])
def test_describe(state: SupervisorState, expected: str) -> None:
    assert describe(state, NOW) == expected


@pytest.mark.parametrize(("lines", "expected"), [
    (["error: Redis connection failed", "  Error 111 connecting to 127.0.0.1:1. Connection refused."],
     "connection refused"),
    (["error: agent 'Echo' is not defined in holt.yml", "  Renamed"],
     "agent 'Echo' is not defined in holt.yml: Renamed"),
    (['{"level": "error", "event_type": "error", "message": "safety sweep failed", "error": "WRONGTYPE x"}'],
     "WRONGTYPE x"),
    (["Traceback (most recent call last):", '  File "x", line 1', "ValueError: bad"], "ValueError: bad"),
    ([], ""),
])
def test_exit_reason(lines: list[str], expected: str) -> None:
    assert exit_reason(lines) == expected
