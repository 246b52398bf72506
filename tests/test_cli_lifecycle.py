"""The installed ``holt`` console script managing real local instances: init, up, list, forage, logs, down.

One recipe instance is shared by the module (starting one costs a few seconds); tests that need an
instance of their own start a one-agent workflow. Every instance is taken down in a ``finally``, and
the tests check that no process of it survives.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import redis

from holt_core.blackboard import Blackboard, connect_redis
from holt_core.cli.list_cmd import format_uptime
from holt_core.cli.up_cmd import next_default_name
from holt_core.config import parse_config
from holt_core.embedded_redis import ServerStatus
from holt_core.models import StructuralType
from holt_core.supervisor import SupervisorState, read_state
from holt_core.tool_runner import parse_tool_output
from tests.engine import make_workspace, python_agents

HOLT = str(Path(sys.executable).parent / "holt")
RECIPE = Path(__file__).resolve().parent.parent / "examples" / "recipe" / "holt.yml"

T = TypeVar("T")

# One agent that ends every goal at once: a cheap instance for tests that only need one running.
ONE_AGENT = python_agents("""\
version: "1.0"
agents:
  Echo:
    command: ["python3", "-c", "import json; print(json.dumps({'artefact_type': 'Done', 'artefact_payload': 'ok', \
'summary': 'ok', 'structural_type': 'Terminal'}))"]
    bidding_strategy: exclusive
""")


@dataclass(frozen=True)
class Instance:
    name: str
    ws: Path
    env: dict[str, str]

    @property
    def log_dir(self) -> Path:
        return self.ws / ".holt" / "logs" / self.name

    def state(self) -> SupervisorState:
        state = read_state(self.log_dir)
        assert state is not None, f"no state file in {self.log_dir}"
        return state


def holt(env: dict[str, str], cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HOLT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def poll(condition: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
    """The first truthy value of ``condition``, checked every 50 ms until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def instance_pids(name: str) -> list[int]:
    """Processes whose command line names the instance (supervisor, orchestrator, pups, workers)."""
    needle = f"\0--instance\0{name}\0".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            status = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if needle in cmdline + b"\0" and status != "Z":
            pids.append(int(entry.name))
    return pids


def listed(inst: Instance) -> list[dict[str, str]]:
    result = holt(inst.env, inst.ws, "list", "--json")
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, str]] = json.loads(result.stdout)
    return [r for r in rows if r["name"] == inst.name]


def take_down(inst: Instance) -> None:
    """``holt down`` and proof that nothing of the instance keeps running."""
    holt(inst.env, inst.ws, "down", "--name", inst.name)
    poll(lambda: not instance_pids(inst.name), f"every process of {inst.name} to exit", timeout=15)


def drop_keys(url: str, name: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"holt:{name}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.hdel("holt:instances", name)
    finally:
        client.close()


def env_for(url: str) -> dict[str, str]:
    """The module-scoped twin of the ``cli_env`` fixture (which is per test)."""
    env = dict(os.environ)
    env.update({"HOLT_REDIS_URL": url, "NO_COLOR": "1", "COLUMNS": "200"})
    return env


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory, redis_server: ServerStatus) -> Iterator[Instance]:
    assert redis_server.url is not None
    ws = make_workspace(tmp_path_factory.mktemp("lifecycle"), example="recipe",
                        files={"holt.yml": python_agents(RECIPE.read_text())})
    inst = Instance(f"t-{uuid.uuid4().hex[:10]}", ws, env_for(redis_server.url))
    try:
        result = holt(inst.env, ws, "up", "--name", inst.name)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"Instance '{inst.name}' is up" in result.stdout
        yield inst
    finally:
        take_down(inst)
        drop_keys(redis_server.url, inst.name)


async def forage_and_check_terminal(inst: Instance, redis_url: str, goal: str) -> None:
    """``forage --watch`` returns 0 after the workflow's Terminal artefact, which is on the blackboard."""
    result = holt(inst.env, inst.ws, "forage", "--goal", goal, "--name", inst.name, "--watch")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✓ Goal artefact created: " in result.stdout
    assert "Workflow completed: Terminal artefact created (type=FormattedRecipe" in result.stdout
    goal_id = result.stdout.split("✓ Goal artefact created: ", 1)[1].split()[0]
    bb = Blackboard(connect_redis(redis_url), inst.name)
    try:
        goal_artefact = await bb.get_artefact(goal_id)
        artefacts = (await bb.list_artefacts()).artefacts
    finally:
        await bb.close()
    assert goal_artefact.payload == goal and goal_artefact.produced_by_role == "user"
    assert goal_artefact.logical_id != goal_artefact.id and goal_artefact.source_artefacts == []
    terminals = [a for a in artefacts if a.structural_type == StructuralType.TERMINAL and a.type == "FormattedRecipe"]
    assert any(a.created_at_ms >= goal_artefact.created_at_ms for a in terminals)


# ---------------------------------------------------------------------------------------------
# The shared recipe instance


def test_up_registers_a_running_instance(recipe: Instance) -> None:
    [row] = listed(recipe)
    assert row["status"] == "Running"
    assert row["workspace"] == str(recipe.ws)
    assert row["uptime"].endswith("s")
    state = recipe.state()
    assert state.status == "running"
    assert sorted(state.components) == sorted(["orchestrator", "api", "Drafter", "Reviewer", "Nutritionist",
                                               "Formatter"])
    assert all(c.ready and c.pid for c in state.components.values())
    # The approvals API listens on loopback; its URL is in the registry record, and it serves its OpenAPI document.
    assert row["api_url"].startswith("http://127.0.0.1:")
    document = httpx.get(row["api_url"] + "/openapi.json", timeout=10)
    assert document.status_code == 200 and "/requests/{request_id}/approve" in document.json()["paths"]
    # Logs stay out of git status, so forage still sees a clean workspace.
    assert ".holt/" in (recipe.ws / ".git" / "info" / "exclude").read_text()


def test_second_up_with_the_same_name_is_refused(recipe: Instance) -> None:
    before = recipe.state().supervisor_pid
    result = holt(recipe.env, recipe.ws, "up", "--name", recipe.name)
    assert result.returncode == 1
    assert f"instance '{recipe.name}' already exists" in result.stderr
    assert recipe.state().supervisor_pid == before


def test_second_instance_on_the_same_workspace_is_refused(recipe: Instance) -> None:
    other = f"t-{uuid.uuid4().hex[:10]}"
    result = holt(recipe.env, recipe.ws, "up", "--name", other)
    assert result.returncode == 1
    assert "workspace in use" in result.stderr and recipe.name in result.stderr
    assert not instance_pids(other)


async def test_forage_watch_exits_after_the_terminal_artefact(recipe: Instance, redis_url: str) -> None:
    await forage_and_check_terminal(recipe, redis_url, "Sourdough bread")


def test_logs_show_the_components_json_lines(recipe: Instance) -> None:
    result = holt(recipe.env, recipe.ws, "logs", "orchestrator", "--name", recipe.name, "--lines", "200")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert 0 < len(records) <= 200
    assert any(r.get("component") == "orchestrator" and r.get("event_type") == "orchestrator_ready" for r in records)
    assert all(r.get("instance") == recipe.name for r in records)

    tail = holt(recipe.env, recipe.ws, "logs", "supervisor", "--name", recipe.name, "--lines", "1")
    assert tail.returncode == 0 and len(tail.stdout.splitlines()) == 1

    missing = holt(recipe.env, recipe.ws, "logs", "Nobody", "--name", recipe.name)
    assert missing.returncode == 1 and "available: " in missing.stderr and "Drafter" in missing.stderr


def test_forage_in_a_dirty_workspace_is_refused(recipe: Instance) -> None:
    (recipe.ws / "scratch.txt").write_text("not committed\n")
    readme = recipe.ws / "README.md"
    original = readme.read_text()
    readme.write_text(original + "edited\n")
    try:
        result = holt(recipe.env, recipe.ws, "forage", "--goal", "anything", "--name", recipe.name)
    finally:
        (recipe.ws / "scratch.txt").unlink()
        readme.write_text(original)
    assert result.returncode == 1
    assert "Git workspace is not clean" in result.stderr
    assert "M README.md" in result.stderr and "?? scratch.txt" in result.stderr
    assert "Goal artefact created" not in result.stdout


def test_supervisor_restarts_a_killed_pup(recipe: Instance, redis_url: str) -> None:
    old = recipe.state().components["Formatter"].pid
    # `logs -f` prints the last line, then whatever is appended: here, the supervisor's restart notes.
    follower = subprocess.Popen([HOLT, "logs", "Formatter", "--name", recipe.name, "-f", "--lines", "1"],
                                cwd=recipe.ws, env=recipe.env, stdout=subprocess.PIPE, text=True)
    followed: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in follower.stdout or ():
            followed.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        followed.get(timeout=20)  # the tail is out: from here on it is following
        os.kill(old, signal.SIGKILL)
        seen: list[str] = []
        while not any('"event_type": "child_restarting"' in line for line in seen):
            seen.append(followed.get(timeout=20))
    finally:
        follower.terminate()
        follower.wait(10)
        reader.join(10)
        if follower.stdout is not None:
            follower.stdout.close()

    def restarted() -> int | None:
        state = read_state(recipe.log_dir)
        current = state.components["Formatter"] if state else None
        return current.pid if current and current.ready and current.pid != old else None

    new = poll(restarted, "the Formatter pup to be restarted and ready")
    assert new != old and os.getpgid(new) == new
    log = (recipe.log_dir / "Formatter.log").read_text()
    assert '"event_type": "child_restarting"' in log and f'"pid": {old}' in log
    assert [row["status"] for row in listed(recipe)] == ["Running"]
    asyncio.run(forage_and_check_terminal(recipe, redis_url, "Rye bread"))


# ---------------------------------------------------------------------------------------------
# Instances of their own


def test_down_stops_everything_and_unregisters(tmp_path: Path, cli_env: dict[str, str], redis_url: str) -> None:
    inst = Instance(f"t-{uuid.uuid4().hex[:10]}", make_workspace(tmp_path, files={"holt.yml": ONE_AGENT}), cli_env)
    try:
        up = holt(inst.env, inst.ws, "up", "--name", inst.name)
        assert up.returncode == 0, up.stdout + up.stderr
        pids = instance_pids(inst.name)
        assert len(pids) == 4  # supervisor, orchestrator, the approvals API, one pup
        assert [row["status"] for row in listed(inst)] == ["Running"]

        down = holt(inst.env, inst.ws, "down")  # no --name: the instance of this workspace
        assert down.returncode == 0, down.stderr
        assert f"Instance '{inst.name}' removed successfully" in down.stdout
        assert listed(inst) == []
        assert not instance_pids(inst.name)
        # The orchestrator let go of the instance lock on its way out.
        client = redis.Redis.from_url(redis_url)
        try:
            assert not client.exists(f"holt:{inst.name}:lock")
        finally:
            client.close()
        # Logs outlive the instance.
        assert holt(inst.env, inst.ws, "logs", "supervisor", "--name", inst.name).returncode == 0
    finally:
        take_down(inst)
        drop_keys(redis_url, inst.name)


def test_up_with_an_unknown_key_names_it_and_starts_nothing(
    tmp_path: Path, cli_env: dict[str, str], redis_url: str
) -> None:
    text = ONE_AGENT.replace("    bidding_strategy:", "    colour: blue\n    bidding_strategy:")
    line = text.splitlines().index("    colour: blue") + 1
    inst = Instance(f"t-{uuid.uuid4().hex[:10]}", make_workspace(tmp_path, files={"holt.yml": text}), cli_env)
    try:
        result = holt(inst.env, inst.ws, "up", "--name", inst.name)
        assert result.returncode == 1
        assert f"holt.yml:{line}: agents.Echo.colour: unknown key" in result.stderr
        assert not (inst.ws / ".holt").exists()
        assert listed(inst) == []
        assert not instance_pids(inst.name)
    finally:
        take_down(inst)
        drop_keys(redis_url, inst.name)


def test_init_writes_a_runnable_project(tmp_path: Path, cli_env: dict[str, str]) -> None:
    ws = make_workspace(tmp_path, files={"README.md": "# project\n"})
    first = holt(cli_env, ws, "init")
    assert first.returncode == 0, first.stderr
    assert "Successfully initialized Holt project!" in first.stdout and "holt up" in first.stdout
    config = parse_config((ws / "holt.yml").read_text())
    assert list(config.agents) == ["example-agent"]
    run_py = ws / "agents" / "example-agent" / "run.py"
    assert os.access(run_py, os.X_OK) and (ws / "agents" / "example-agent" / "README.md").is_file()
    request = {"claim_type": "exclusive", "target_artefact": {"type": "GoalDefined", "payload": "hi"},
               "context_chain": []}
    out = subprocess.run([sys.executable, str(run_py)], input=json.dumps(request), capture_output=True, text=True,
                         check=True, timeout=30).stdout
    assert parse_tool_output(out).structural_type == StructuralType.TERMINAL

    again = holt(cli_env, ws, "init")
    assert again.returncode == 1 and "already initialized" in again.stderr

    (ws / "agents" / "mine.txt").write_text("keep me")
    (ws / "holt.yml").write_text("edited")
    forced = holt(cli_env, ws, "init", "--force")
    assert forced.returncode == 0, forced.stderr
    assert (ws / "agents" / "mine.txt").read_text() == "keep me"
    assert parse_config((ws / "holt.yml").read_text()).agents


def test_commands_outside_a_git_repository_fail(tmp_path: Path, cli_env: dict[str, str]) -> None:
    for args in (["init"], ["up"], ["forage", "--goal", "x"]):
        result = holt(cli_env, tmp_path, *args)
        assert result.returncode == 1 and "not a Git repository" in result.stderr, args


# ---------------------------------------------------------------------------------------------
# Pure helpers


def test_next_default_name_follows_the_highest_default() -> None:
    assert next_default_name([]) == "default-1"
    assert next_default_name(["default-1", "default-7", "default-x", "other-9", "default-3"]) == "default-8"


def test_uptime_format() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)

    def ago(seconds: int) -> str:
        return format_uptime((now - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ"), now)

    assert [ago(5), ago(65), ago(3600 + 120 + 5)] == ["5s", "1m 5s", "1h 2m"]
    assert format_uptime("garbage", now) == "-"
