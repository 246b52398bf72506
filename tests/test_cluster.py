"""Holt on a Redis Cluster: a ``{name}`` instance keeps every key in one hash slot, its clients go to the node that
owns it, and a workflow with a question and an approval runs to Terminal on 3 masters started here (the embedded
redis-server binary in cluster mode). A plain name is refused on a cluster."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.crc import key_slot

from holt_core.blackboard import Blackboard, connect_redis
from holt_core.embedded_redis import LocalCluster, start_local_cluster
from holt_core.hitl.models import RequestKind, RequestStatus
from holt_core.keys import Keys, single_slot, validate_instance_name
from holt_core.models import StructuralType
from holt_core.redis_cluster import check_cluster_slots
from holt_core.transaction import Tx
from tests.clirun import HOLT
from tests.clirun import holt as holt_cli
from tests.engine import make_workspace, wait_for_artefact, wait_settled
from tests.hitl_support import APPROVERS_POLICY, agent, config_text, hitl_engine, start_goal, wait_request

FIRST_NODE_LAST_SLOT = 16384 // 3 - 1


def _key_names(keys: Keys) -> list[str]:
    """Every key and channel name ``Keys`` builds (each method called with placeholder arguments)."""
    names: list[str] = []
    for name, member in inspect.getmembers(type(keys)):
        if name.startswith("_") or name in ("instance", "prefix", "single_slot", "slot"):
            continue
        if isinstance(member, property):
            value = getattr(keys, name)
        elif inspect.isfunction(member):
            if name.startswith("id_from"):
                continue
            params = list(inspect.signature(member).parameters)[1:]
            value = member(keys, *(f"{p}-x" for p in params))
        else:
            continue
        if isinstance(value, str) and not value.endswith("*"):
            names.append(value)
    return names


def test_every_key_of_a_braced_instance_lands_in_one_slot() -> None:
    keys = Keys("{prod}")
    names = _key_names(keys)
    assert len(names) > 40
    names.append(keys.proof("alice.b@x", "req-1", "nonce"))  # the operators' proofs written in the same Tx
    assert {key_slot(n.encode()) for n in names} == {keys.slot}
    assert keys.single_slot and single_slot("{prod}") and not single_slot("prod")
    # A plain name spreads its keys over many slots: what a cluster cannot run.
    assert len({key_slot(n.encode()) for n in _key_names(Keys("prod"))}) > 10
    assert Keys("{prod}").artefact("a") == "holt:{prod}:artefact:a"  # Go's key format, the name as hash tag
    for bad in ("{prod", "prod}", "{}", "{Prod}", "{{prod}}", "{" + "a" * 64 + "}"):
        with pytest.raises(Exception, match="invalid instance name"):
            validate_instance_name(bad)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    root = Path(tempfile.mkdtemp(prefix="holt-cluster-"))
    nodes = start_local_cluster(root)
    try:
        yield nodes
    finally:
        nodes.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def braced() -> str:
    """A ``{name}`` whose slot is not on the node the URL names (so routing is needed)."""
    while True:
        name = f"{{t-{uuid.uuid4().hex[:10]}}}"
        if Keys(name).slot > FIRST_NODE_LAST_SLOT:
            return name


@pytest.fixture
async def cbb(cluster: LocalCluster, braced: str) -> AsyncIterator[Blackboard]:
    board = Blackboard(connect_redis(cluster.url), braced)
    try:
        yield board
    finally:
        await board.close()


@pytest.fixture
def cluster_env(cluster: LocalCluster) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HOLT_REDIS_URL=cluster.url, NO_COLOR="1", COLUMNS="200")
    return env


AGENTS = (agent("Architect", "architect", "GoalDefined=exclusive")
          + agent("Asker", "asker", "Design=exclusive", "human"))


async def test_question_and_approval_workflow_runs_to_terminal_on_a_cluster(
        tmp_path: Path, cluster: LocalCluster, braced: str, cbb: Blackboard, cluster_env: dict[str, str]) -> None:
    engine = hitl_engine(tmp_path, cluster.url, braced, config_text(AGENTS, APPROVERS_POLICY))
    await engine.start()
    try:
        await start_goal(engine, operator="olivia")
        approval = await wait_request(cbb, lambda r: r.kind == RequestKind.APPROVAL)
        code, _, err = await holt_cli(cluster_env, "approve", approval.id, "--name", braced, "--as", "alice",
                                      "--digest", approval.digest)
        assert code == 0, err
        question = await wait_request(cbb, lambda r: r.kind == RequestKind.QUESTION)
        code, _, err = await holt_cli(cluster_env, "answer", question.id, "PostgreSQL", "--name", braced,
                                      "--as", "alice")
        assert code == 0, err
        terminal = await wait_for_artefact(cbb, lambda a: a.structural_type == StructuralType.TERMINAL)
        await wait_settled(cbb)
    finally:
        await engine.close()
    assert terminal.payload == "asked Which database should we use?; answer was: PostgreSQL"
    code, out, err = await holt_cli(cluster_env, "status", approval.id, "--name", braced, "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == RequestStatus.APPROVED.value
    code, _, err = await holt_cli(cluster_env, "audit", "verify", "--name", braced)
    assert code == 0, err

    # Every key the workflow wrote (the proofs of olivia's start and alice's acts included) is in the one slot,
    # on the node that owns it; the node the URL names holds none of them.
    owner_keys: list[str] = []
    for port in cluster.ports:
        node = connect_redis(f"redis://127.0.0.1:{port}/0")
        try:
            found = [k async for k in node.scan_iter(match="*", count=1000)]
        finally:
            await node.aclose()
        mine = [k for k in found if f":{braced}:" in k]
        if port == cluster.ports[0]:
            assert mine == []
        owner_keys += mine
    assert len(owner_keys) > 20
    assert {key_slot(k.encode()) for k in owner_keys} == {cbb.keys.slot}
    assert any(k.startswith("holt-ops:alice:") for k in owner_keys)
    assert any(k.startswith("holt-ops:olivia:") for k in owner_keys)
    # A client that only scans (holt destroy plans that way, without a Blackboard) finds them on that node too.
    scanner = connect_redis(cluster.url)
    try:
        scanned = {k async for k in scanner.scan_iter(match=cbb.keys.instance_pattern, count=1000)}
    finally:
        await scanner.aclose()
    assert scanned == {k for k in owner_keys if k.startswith("holt:")}


async def test_plain_name_is_refused_on_a_cluster(tmp_path: Path, cluster: LocalCluster,
                                                  cluster_env: dict[str, str]) -> None:
    redis = connect_redis(cluster.url)
    try:
        with pytest.raises(Exception, match="would span hash slots"):
            await check_cluster_slots(redis, "plain")
        await check_cluster_slots(redis, "{plain}")
        # What the refusal protects from: a multi-key write of a plain name fails on a cluster.
        board = Blackboard(redis, "plain")
        keys = board.keys
        with pytest.raises(Exception, match=r"CROSSSLOT|MOVED"):
            await board.run(Tx().set(keys.lock_owner, "x").set(keys.debug_mode, "y").set(keys.hitl_policy, "z"))
    finally:
        await redis.aclose()
    ws = make_workspace(tmp_path, files={"holt.yml": config_text(agent("A", "implementer", "GoalDefined=claim"))})
    proc = await asyncio.create_subprocess_exec(HOLT, "up", "--name", "plain", cwd=ws, env=cluster_env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, raw = await asyncio.wait_for(proc.communicate(), 60)
    err = raw.decode()
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 1 and "would span hash slots" in lines[0] and "'{plain}'" in err, (out, err)
    assert "Traceback" not in err


async def test_single_server_keeps_its_one_connection_per_client(redis_url: str, instance: str) -> None:
    """On one server a braced name works as a plain one does (the routing asks once, then stays put)."""
    braced = "{" + instance + "}"
    board = Blackboard(connect_redis(redis_url), braced)
    try:
        await board.run(Tx().set(board.keys.lock_owner, "x").set(board.keys.debug_mode, "y"))
        assert await board.redis.get(board.keys.debug_mode) == "y"
        route = board.redis.holt_route  # type: ignore[attr-defined]
        assert route.owner is not None and route.owner == route.home
        await board.redis.delete(board.keys.lock_owner, board.keys.debug_mode)
    finally:
        await board.close()


async def test_holt_tui_scans_a_braced_instance_on_a_cluster_a_page_per_command(
        cluster: LocalCluster, braced: str, cbb: Blackboard) -> None:
    """The attach scan's SORT_RO reads the hashes through patterns in the instance's hash tag: the owning node
    serves it (no CROSSSLOT, no fallback), newest page first, then the rest oldest first."""
    from holt_tui.config import TuiConfig
    from holt_tui.feed import FeedItem, ScanPage
    from holt_tui.reader import Reader
    from holt_tui.sources import null_sources
    from tests.test_cli_read import artefact

    written = [await cbb.create_artefact(artefact(created=1_000 + n)) for n in range(9)]
    pages: list[list[str]] = []
    done = asyncio.Event()

    def sink(item: FeedItem) -> None:
        if isinstance(item, ScanPage):
            pages.append([a.id for a in item.artefacts])
            if item.last:
                done.set()

    reader = Reader(cluster.url, braced, sink, null_sources(), TuiConfig(first_page=4))
    task = asyncio.create_task(reader.run())
    try:
        await asyncio.wait_for(done.wait(), 30)
    finally:
        task.cancel()
    ids = [a.id for a in written]
    assert pages[0] == ids[::-1][:4] and pages[1] == ids[:5]
    assert reader._sort_gets is not None  # SORT_RO was served, not refused
