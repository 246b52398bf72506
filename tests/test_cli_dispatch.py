"""The CLI loads only what a command uses: checked through ``sys.modules`` in a fresh interpreter, not time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from holt_core.blackboard import Blackboard
from holt_core.cli.main import COMMANDS, help_text
from holt_core.models import Artefact, StructuralType, new_id

# Runs ``holt ARGS`` in this interpreter and writes the names of the loaded modules to $DUMP at exit.
_DRIVER = """
import atexit, json, os, sys
atexit.register(lambda: open(os.environ["DUMP"], "w").write(json.dumps(sorted(sys.modules))))
from holt_core.cli.main import run
run(sys.argv[1:])
"""
ENGINE = ("holt_core.orchestrator", "holt_core.engine", "holt_core.hitl.coordinator", "holt_core.debug.gate")


def loaded_by(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    dump = tmp_path / "modules.json"
    done = subprocess.run([sys.executable, "-c", _DRIVER, *args], env={**env, "DUMP": str(dump)},
                          capture_output=True, text=True, timeout=60, check=False)
    return set(json.loads(dump.read_text())), done


def prefixed(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_the_table_names_exactly_the_commands_the_modules_register() -> None:
    import importlib

    registered: dict[str, str] = {}
    for module in sorted({m for m, _ in COMMANDS.values()}):
        app = typer.Typer()
        importlib.import_module(module).register(app)
        names = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
        registered.update({str(n): module for n in names})
    assert registered == {name: module for name, (module, _) in COMMANDS.items()}


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_load_nothing_but_the_table(tmp_path: Path, flag: str) -> None:
    modules, done = loaded_by(tmp_path, dict(os.environ), flag)
    assert done.returncode == 0, done.stderr
    assert prefixed(modules, ("typer", "click", "rich", "redis", "pydantic", "textual")) == []
    assert sorted(m for m in modules if m.startswith("holt_core")) == ["holt_core", "holt_core.cli",
                                                                         "holt_core.cli.main"]


def test_help_lists_every_public_command() -> None:
    text = help_text()
    for name in COMMANDS:
        assert (f"  {name} " in text) == (name not in ("orchestrator", "pup"))


def goal() -> Artefact:
    return Artefact(id=new_id(), logical_id=new_id(), version=1, type="GoalDefined",
                    structural_type=StructuralType.STANDARD, payload="x", produced_by_role="user")


@pytest.mark.parametrize("args", [["hoard"], ["questions"], ["pending"], ["audit", "verify"], ["explain"],
                                  ["debug", "held"]])
async def test_read_commands_load_neither_the_engine_nor_textual(tmp_path: Path, cli_env: dict[str, str],
                                                                 bb: Blackboard, args: list[str]) -> None:
    artefact = await bb.create_artefact(goal())
    if args == ["explain"]:
        args = ["explain", artefact.id]
    modules, done = loaded_by(tmp_path, cli_env, *args, "--name", bb.instance)
    assert "Traceback" not in done.stderr
    assert done.returncode == 0, done.stderr
    assert prefixed(modules, (*ENGINE, "textual")) == []
    if args[0] in ("hoard", "questions", "pending"):  # nothing they do writes, so nothing loads the audit trail
        assert "holt_core.audit" not in modules


@pytest.mark.parametrize("command", ["questions", "pending"])
async def test_hitl_reads_parse_no_config_when_the_orchestrator_published_its_policy(
        tmp_path: Path, cli_env: dict[str, str], bb: Blackboard, command: str) -> None:
    from holt_core.hitl.policy import HitlPolicy

    await bb.redis.set(bb.keys.hitl_policy, HitlPolicy().model_dump_json())  # as a running orchestrator does
    modules, done = loaded_by(tmp_path, cli_env, command, "--name", bb.instance)
    assert done.returncode == 0, done.stderr
    # holt.yml (yaml, the config model, the API settings) and operator tokens are for acts, not for reading.
    assert prefixed(modules, ("holt_core.config", "yaml", "pydantic_settings", "holt_core.operators")) == []


async def test_list_loads_neither_the_engine_nor_the_supervisor(tmp_path: Path, cli_env: dict[str, str],
                                                                bb: Blackboard) -> None:
    await bb.create_artefact(goal())
    modules, done = loaded_by(tmp_path, cli_env, "list")
    assert done.returncode == 0, done.stderr
    # No instance is running here, so no supervisor state file is read: neither its module nor holt.yml's.
    assert prefixed(modules, (*ENGINE, "holt_core.pup", "holt_core.supervisor", "holt_core.config", "yaml",
                              "holt_core.health", "aiohttp", "textual")) == []


# What a read command pays for and never uses: redis-py (with OpenTelemetry, which redis-py 8 imports), rich, and
# pydantic (the records are read by the light readers: instances.InstanceRecord, artefact_record.ArtefactRecord,
# hitl.open_items; typer is kept below 0.29, which parses every option through pydantic).
HEAVY = ("redis", "opentelemetry", "rich", "pydantic", "pydantic_core")
# Holt's pydantic models and what only writers use.
MODELS = ("holt_core.models", "holt_core.hitl.models", "holt_core.hitl.policy", "holt_core.hitl.client",
          "holt_core.instance_model", "holt_core.blackboard", "holt_core.transaction")


@pytest.mark.parametrize("args", [["hoard"], ["questions"], ["pending"], ["list"]])
async def test_read_commands_load_neither_pydantic_nor_redis_py_nor_rich(
        tmp_path: Path, cli_env: dict[str, str], bb: Blackboard, args: list[str]) -> None:
    from holt_core.hitl.models import HitlRequest, RequestKind
    from holt_core.hitl.policy import HitlPolicy
    from holt_core.instances import InstanceRecord, register

    await bb.redis.set(bb.keys.hitl_policy, HitlPolicy().model_dump_json())  # as a running orchestrator does
    await bb.create_artefact(goal())
    await register(bb.redis, InstanceRecord(name=bb.instance, run_id="r", workspace_path=str(tmp_path),
                                            started_at="2026-01-01T00:00:00+00:00"))
    for kind in (RequestKind.QUESTION, RequestKind.APPROVAL):  # one open request each for questions and pending
        req = HitlRequest(id=new_id(), kind=kind, created_ms=1, text="ok?", action="deploy")
        await bb.redis.hset(bb.keys.hitl_request(req.id), mapping=req.to_hash())
        await bb.redis.zadd(bb.keys.hitl_open, {req.id: 1})
    modules, done = loaded_by(tmp_path, cli_env, *args, *(["--name", bb.instance] if args != ["list"] else []))
    assert done.returncode == 0, done.stderr
    shown = {"hoard": "1 artefact found", "questions": "ok?", "pending": "action: deploy", "list": bb.instance}
    assert shown[args[0]] in done.stdout
    assert prefixed(modules, HEAVY) == []
    assert prefixed(modules, MODELS) == []
    if args == ["list"]:  # the registry only: no blackboard reads at all
        assert prefixed(modules, ("holt_core.board_reads", "holt_core.artefact_record")) == []


async def test_a_read_command_that_meets_no_redis_says_so_in_redis_py_words(tmp_path: Path,
                                                                            cli_env: dict[str, str]) -> None:
    _, done = loaded_by(tmp_path, {**cli_env, "HOLT_REDIS_URL": "redis://127.0.0.1:1/0"}, "questions",
                              "--name", "nowhere")
    assert done.returncode == 1
    # As redis-py's asyncio client words it (the light client never imported it).
    assert done.stderr.splitlines() == ["error: Redis connection failed",
                                        "  Error 111 connecting to 127.0.0.1:1. Connect call failed ('127.0.0.1', 1).",
                                        "hint: holt redis status shows which Redis holt uses"]
    assert "Traceback" not in done.stderr
