"""Questions to people: asked by a real agent process, answered from the CLI, the asker resumes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from holt_core.blackboard import Blackboard
from holt_core.hitl.models import RequestStatus
from holt_core.models import ClaimStatus, StructuralType
from tests.clirun import HOLT
from tests.clirun import holt as holt_cli
from tests.engine import Engine, wait_for_artefact, wait_settled
from tests.hitl_support import agent, config_text, hitl_engine, runs, start_goal, wait_request

ASKER = config_text(agent("Asker", "asker", "GoalDefined=exclusive", "human"))


async def test_question_answered_from_cli_resumes_the_asker(tmp_path: Path, redis_url: str, instance: str,
                                                            bb: Blackboard, cli_env: dict[str, str]) -> None:
    engine = hitl_engine(tmp_path, redis_url, instance, ASKER)
    await engine.start()
    # Live artefacts are told apart from memory (each HITL artefact is announced ahead of itself), not by a
    # read of hitl:artefacts per artefact; count the reads to show it.
    store = engine.orchestrator.hitl.store
    lookups: list[str] = []
    read = store.request_for_artefact

    async def counted(artefact_id: str) -> str | None:
        lookups.append(artefact_id)
        return await read(artefact_id)

    store.request_for_artefact = counted  # type: ignore[method-assign]
    try:
        # questions --wait is started before any question exists and returns when one appears.
        waiter = await asyncio.create_subprocess_exec(
            HOLT, "questions", "--wait", "--json", "--name", instance, env=cli_env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        goal = await start_goal(engine)
        out, err = await asyncio.wait_for(waiter.communicate(), 30)
        assert waiter.returncode == 0, err
        item = json.loads(out)
        assert item["kind"] == "question" and item["text"] == "Which database should we use?"
        assert item["requester_role"] == "Asker"
        qid = item["id"]

        question = await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.QUESTION)
        claims, _ = await bb.list_claims()
        assert [c.artefact_id for c in claims] == [goal.id]  # the Question got no claim of its own
        assert claims[0].status == ClaimStatus.PENDING_EXCLUSIVE  # the asker's claim is held
        assert len(runs(engine)) == 1

        code, listing, err = await holt_cli(cli_env, "questions", "--name", instance)
        assert code == 0 and qid in listing.decode() and "Which database" in listing.decode()

        code, _, err = await holt_cli(cli_env, "answer", qid[:8], "PostgreSQL", "--name", instance,
                                         "--as", "alice", "--request-id", "r-1")
        assert code == 0, err
        terminal = await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL)
        await wait_settled(bb)
    finally:
        await engine.close()

    assert lookups == []
    assert terminal.payload == "asked Which database should we use?; answer was: PostgreSQL"
    assert terminal.produced_by_role == "Asker"
    # The re-run saw the Question and the Answer in its context chain.
    assert runs(engine)[1].endswith("Clarification,Answer")
    arts = {a.id: a for a in (await bb.list_artefacts()).artefacts}
    answer = next(a for a in arts.values() if a.structural_type == StructuralType.ANSWER)
    assert answer.source_artefacts[0] == question.id and answer.produced_by_role == "human:alice"
    claims, _ = await bb.list_claims()
    assert [c.status for c in claims] == [ClaimStatus.COMPLETE]

    code, out3, err = await holt_cli(cli_env, "status", qid, "--name", instance, "--json")
    req = json.loads(out3)
    assert req["status"] == "answered" and req["answer"]["by"] == "human:alice" and req["consumed_ms"] > 0
    code, listing, _ = await holt_cli(cli_env, "questions", "--name", instance)
    assert code == 0 and listing.decode().strip() == "No open questions."

    # The trail has the question and its answer, and verifies.
    records = await bb.audit.records()
    actions = [(r.action, r.subject) for r in records]
    assert ("question_asked", qid) in actions and ("question_answered", qid) in actions
    answered = next(r for r in records if r.action == "question_answered")
    assert answered.operator == "human:alice" and answered.details["text"] == "PostgreSQL"
    assert (await bb.audit.verify()).ok

    # A retry with the same request id returns the stored result; a different answer is refused.
    code, out4, err = await holt_cli(cli_env, "answer", qid, "PostgreSQL", "--name", instance, "--as", "alice",
                                     "--request-id", "r-1", "--json")
    assert code == 0, err
    assert json.loads(out4)["answer"]["request_id"] == "r-1"
    code, _, err = await holt_cli(cli_env, "answer", qid, "MySQL", "--name", instance, "--as", "bob")
    assert code == 1 and "already answered by human:alice at" in err
    # Amend is refused: the asker already read the answer.
    code, _, err = await holt_cli(cli_env, "answer", qid, "MySQL", "--name", instance, "--as", "alice", "--amend")
    assert code == 1 and "too late to amend" in err
    assert [r.action for r in await bb.audit.records()][-2:] == ["refused", "refused"]


async def test_two_concurrent_answers_exactly_one_wins(tmp_path: Path, redis_url: str, instance: str,
                                                      bb: Blackboard, cli_env: dict[str, str]) -> None:
    engine = hitl_engine(tmp_path, redis_url, instance, ASKER)
    await engine.start()
    try:
        await start_goal(engine)
        req = await wait_request(bb, lambda r: r.kind.value == "question")
        results = await asyncio.gather(*(
            holt_cli(cli_env, "answer", req.id, text, "--name", instance, "--as", who)
            for who, text in (("alice", "PostgreSQL"), ("bob", "MySQL"), ("carol", "SQLite"))))
        await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL)
        await wait_settled(bb)
    finally:
        await engine.close()
    winners = [r for r in results if r[0] == 0]
    losers = [r for r in results if r[0] != 0]
    assert len(winners) == 1 and len(losers) == 2
    stored = await wait_request(bb, lambda r: r.id == req.id)
    assert stored.status == RequestStatus.ANSWERED and stored.answer is not None
    for _, _, err in losers:
        assert f"already answered by {stored.answer.by} at" in err
    answers = [a for a in (await bb.list_artefacts()).artefacts if a.structural_type == StructuralType.ANSWER]
    assert len(answers) == 1 and answers[0].payload == stored.answer.text
    assert (await bb.audit.verify()).ok


async def test_amend_before_the_asker_reads_it(tmp_path: Path, redis_url: str, instance: str,
                                              bb: Blackboard, cli_env: dict[str, str]) -> None:
    engine = hitl_engine(tmp_path, redis_url, instance, ASKER)
    await engine.start()
    await start_goal(engine)
    req = await wait_request(bb, lambda r: r.kind.value == "question")
    await engine.close()  # nobody runs: the answer stays unread, so it can be amended
    code, _, err = await holt_cli(cli_env, "answer", req.id, "MySQL", "--name", instance, "--as", "alice")
    assert code == 0, err
    code, _, err = await holt_cli(cli_env, "answer", req.id, "PostgreSQL", "--name", instance, "--as", "alice",
                                  "--amend")
    assert code == 0, err
    again = Engine(redis_url, instance, engine.workspace, engine.config)
    await again.start()  # recovery resumes the asker with the amended answer
    try:
        terminal = await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL)
    finally:
        await again.close()
    assert terminal.payload.endswith("answer was: PostgreSQL")
    amended = [r for r in await bb.audit.records() if r.action == "answer_amended"]
    assert len(amended) == 1 and amended[0].details["text"] == "PostgreSQL"


def test_example_policy_loads_and_bad_policy_is_a_line_numbered_error() -> None:
    from holt_core.config import load_config, parse_config
    from holt_core.errors import InvalidInput

    example = Path(__file__).resolve().parent.parent / "examples" / "recipe" / "holt-hitl.yml"
    policy = load_config(example).hitl
    assert policy.risk_for(artefact_type="RecipeDraft", produced_by="Drafter") == "medium"
    assert policy.risk_for(action="delete-everything") == "critical"
    assert policy.level("critical").min_approvals == 2 and policy.roles_of("bob") == {"approver", "lead"}
    base = 'version: "1.0"\nagents:\n  A:\n    command: [x]\n    bidding_strategy: ignore\nhitl:\n'
    for bad, message in (
        ("  risk_levels:\n    high: {auto_approve: true}\n", "holt.yml:7: hitl.risk_levels: "),
        ("  rules:\n    - match: {artefact_typ: X}\n      risk: high\n",
         "holt.yml:8: hitl.rules[0].match.artefact_typ"),
        ("  questions:\n    expire_after: soon\n", "holt.yml:8: hitl.questions.expire_after"),
        ("  rules:\n    - match: {action: deploy}\n      risk: severe\n", "holt.yml:9: hitl.rules[0].risk"),
    ):
        try:
            parse_config(base + bad)
        except InvalidInput as err:
            assert err.message.startswith(message), err.message
        else:
            raise AssertionError(f"accepted: {bad}")
