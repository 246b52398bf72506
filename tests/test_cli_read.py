"""``holt hoard``, ``unearth`` and ``watch`` through the installed console script, against a real Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from holt_core.blackboard import Blackboard
from holt_core.models import STORED, Artefact, Claim, ClaimStatus, StructuralType, WorkflowEvent, new_id, now_ms
from tests.clirun import HOLT, WAIT_S, holt

GO_ARTEFACT_ID = "0badc0de-1111-4222-8333-444455556666"
GO_CLAIM_ID = "0badc1a1-1111-4222-8333-444455556666"
# What the Go version leaves in Redis: nil slices as null, no created_at_ms (pre-M3.9), HTML-escaped JSON
# inside the payload, and a field this version does not know.
GO_PAYLOAD = '{"html":"\\u003cb\\u003e \\u0026 co"}'
GO_ARTEFACT_HASH: dict[Any, Any] = {  # Any: redis-py's key type is invariant
    "id": GO_ARTEFACT_ID,
    "logical_id": "0badc0de-9999-4222-8333-444455556666",
    "version": "1",
    "structural_type": "Standard",
    "type": "GoalDefined",
    "payload": GO_PAYLOAD,
    "source_artefacts": "null",
    "produced_by_role": "user",
    "future_field": "ignored",
}
GO_CLAIM_HASH: dict[Any, Any] = {
    "id": GO_CLAIM_ID,
    "artefact_id": GO_ARTEFACT_ID,
    "status": "pending_review",
    "granted_review_agents": "null",
    "granted_parallel_agents": "[]",
    "granted_exclusive_agent": "",
    "additional_context_ids": "null",
    "termination_reason": "",
    "phase_state": "",
    "grant_queue": "",
    "last_grant_agent": "",
    "last_grant_time": "0",
    "artefact_expected": "0",
    "granted_agent_image_id": "",
}


def _as_stored(**fields: object) -> Artefact:
    """An artefact as read back from Redis, where anyone may have written a hostile type."""
    return Artefact.model_validate(fields, context=STORED)


def artefact(
    type_: str = "Poem",
    *,
    by: str = "Poet",
    payload: str = "roses are red",
    st: StructuralType = StructuralType.STANDARD,
    ident: str | None = None,
    created: int = 0,
) -> Artefact:
    ident = ident or new_id()
    return _as_stored(
        id=ident,
        logical_id=ident,
        version=1,
        structural_type=st,
        type=type_,
        payload=payload,
        produced_by_role=by,
        created_at_ms=created,
    )


class Running:
    """A long-running ``holt`` whose output is read line by line while the test acts."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []

    @classmethod
    async def start(cls, env: dict[str, str], *args: str) -> Running:
        proc = await asyncio.create_subprocess_exec(
            HOLT, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
        )
        return cls(proc)

    async def _until(self, stream: asyncio.StreamReader, sink: list[str], pred: Callable[[str], bool]) -> str:
        async def read() -> str:
            while True:
                raw = await stream.readline()
                if not raw:
                    raise AssertionError(f"holt ended first; stdout={self.out} stderr={self.err}")
                line = raw.decode().rstrip("\n")
                sink.append(line)
                if pred(line):
                    return line

        return await asyncio.wait_for(read(), WAIT_S)

    async def stdout_until(self, pred: Callable[[str], bool]) -> str:
        assert self.proc.stdout is not None
        return await self._until(self.proc.stdout, self.out, pred)

    async def stderr_until(self, pred: Callable[[str], bool]) -> str:
        assert self.proc.stderr is not None
        return await self._until(self.proc.stderr, self.err, pred)

    async def finish(self) -> int:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        out, err = await asyncio.wait_for(self.proc.communicate(), WAIT_S)
        self.out += out.decode().splitlines()
        self.err += err.decode().splitlines()
        assert self.proc.returncode is not None
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


async def wait_subscribed(bb: Blackboard) -> None:
    """Until a watcher holds the workflow channel (the last of its three subscriptions)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            counts = dict(await bb.redis.pubsub_numsub(bb.keys.workflow_events))
            if counts.get(bb.keys.workflow_events, 0) >= 1:
                return
            await asyncio.sleep(0.02)


async def write_go_records(bb: Blackboard) -> None:
    await bb.redis.hset(bb.keys.artefact(GO_ARTEFACT_ID), mapping=GO_ARTEFACT_HASH)
    await bb.redis.hset(bb.keys.claim(GO_CLAIM_ID), mapping=GO_CLAIM_HASH)
    await bb.redis.hset(bb.keys.bids(GO_CLAIM_ID), mapping={"Poet": "exclusive"})


# ---------------------------------------------------------------------------------------------
# hoard


async def test_hoard_lists_in_time_order(bb: Blackboard, cli_env: dict[str, str]) -> None:
    now = now_ms()
    later = await bb.create_artefact(artefact("Poem", created=now - 1_000, payload="second\nline two"))
    first = await bb.create_artefact(artefact("GoalDefined", by="user", created=now - 90_000, payload="Write"))
    # Independent invocations run side by side: each one pays the interpreter's start-up.
    (rc, out, err), (rc_jsonl, out_jsonl, _) = await asyncio.gather(
        holt(cli_env, "hoard", "--name", bb.instance),
        holt(cli_env, "hoard", "-n", bb.instance, "--output", "jsonl"),
    )
    assert rc == 0, err
    text = out.decode().splitlines()
    assert text[:4] == [
        f"Artefacts for instance '{bb.instance}':",
        "",
        "ID         VER   TYPE       BY                 AGE      PAYLOAD",
        "---------- ----- ---------- ------------------ -------- ----------------------------------------",
    ]
    assert text[4].startswith(f"{first.id[:8]}   -     Goal       user               1m ago   Write")
    assert text[5].startswith(f"{later.id[:8]}   -     Poem       Poet               ")
    assert text[5].endswith(" second")
    assert text[6:] == ["", "2 artefacts found"]

    assert rc_jsonl == 0
    assert [json.loads(line) for line in out_jsonl.decode().splitlines()] == [first.to_event(), later.to_event()]


async def test_hoard_filters(bb: Blackboard, cli_env: dict[str, str]) -> None:
    now = now_ms()
    await write_go_records(bb)  # no timestamp
    old = await bb.create_artefact(artefact("Poem", created=now - 7_200_000))
    poem = await bb.create_artefact(artefact("Poem", created=now - 1_000))
    await bb.create_artefact(artefact("Review", by="Critic", created=now - 500))

    async def ids(*flags: str) -> list[str]:
        rc, out, err = await holt(cli_env, "hoard", "-n", bb.instance, "-o", "jsonl", *flags)
        assert rc == 0, err
        return [json.loads(line)["id"] for line in out.decode().splitlines()]

    results = await asyncio.gather(
        ids("--type", "Po*"),
        ids("--type", "Po*", "--since", "1h"),
        ids("--agent", "user"),
        ids("--agent", "user", "--since", "1h"),
        ids("--until", "1h"),
        holt(cli_env, "hoard", "-n", bb.instance, "--type", "Nothing*"),
    )
    assert results[0] == [old.id, poem.id]
    assert results[1] == [poem.id]
    assert results[2] == [GO_ARTEFACT_ID]
    assert results[3] == []  # hoard drops artefacts without a time once a time bound is set
    assert results[4] == [old.id]
    assert results[5][:2] == (0, f"No artefacts found for instance '{bb.instance}'\n".encode())


async def test_hoard_reads_what_the_go_version_wrote(bb: Blackboard, cli_env: dict[str, str]) -> None:
    await write_go_records(bb)
    broken = new_id()
    await bb.redis.hset(bb.keys.artefact(broken), mapping={**GO_ARTEFACT_HASH, "id": broken, "version": "one"})

    (rc, out, err), (rc_table, table, _), (rc_get, got, get_err) = await asyncio.gather(
        holt(cli_env, "hoard", "-n", bb.instance, "-o", "jsonl"),
        holt(cli_env, "hoard", "-n", bb.instance),
        holt(cli_env, "hoard", "-n", bb.instance, GO_ARTEFACT_ID[:8]),
    )
    assert rc == 0
    (record,) = [json.loads(line) for line in out.decode().splitlines()]
    assert record == {
        "id": GO_ARTEFACT_ID,
        "logical_id": GO_ARTEFACT_HASH["logical_id"],
        "version": 1,
        "structural_type": "Standard",
        "type": "GoalDefined",
        "payload": GO_PAYLOAD,
        "source_artefacts": [],
        "produced_by_role": "user",
        "created_at_ms": 0,
    }
    assert f"Skipping malformed artefact: key={bb.keys.artefact(broken)} (error: " in err

    assert rc_table == 0
    assert f"{GO_ARTEFACT_ID[:8]}   -     Goal       user               -        {GO_PAYLOAD}" in table.decode()
    assert rc_get == 0, get_err
    assert got.decode().startswith('{\n  "id": "0badc0de-')
    assert json.loads(got)["payload"] == GO_PAYLOAD


async def test_hoard_get_resolves_short_ids(bb: Blackboard, cli_env: dict[str, str]) -> None:
    one = await bb.create_artefact(artefact(ident="abcdef12-0000-4000-8000-000000000001"))
    await bb.create_artefact(artefact(ident="abcdef12-0000-4000-8000-100000000002"))

    full, prefix, ambiguous, missing, short = await asyncio.gather(
        holt(cli_env, "hoard", "-n", bb.instance, one.id),
        holt(cli_env, "hoard", "-n", bb.instance, "abcdef12-0000-4000-8000-0"),
        holt(cli_env, "hoard", "-n", bb.instance, "abcdef"),
        holt(cli_env, "hoard", "-n", bb.instance, "ffffff"),
        holt(cli_env, "hoard", "-n", bb.instance, "abc"),
    )
    assert full[0] == 0, full[2]
    assert json.loads(full[1]) == one.to_event()
    assert prefix[0] == 0 and json.loads(prefix[1])["id"] == one.id

    rc, out, err = ambiguous
    assert rc == 1 and out == b""
    assert err.splitlines() == [
        "error: ambiguous short ID 'abcdef' matches 2 artefacts",
        "  abcdef12-0000-4000-8000-000000000001",
        "  abcdef12-0000-4000-8000-100000000002",
        "hint: Use a longer prefix to uniquely identify the artefact.",
    ]
    assert missing[0] == 1 and "error: artefact with ID 'ffffff' not found" in missing[2]
    assert short[0] == 1 and "error: short ID must be at least 6 characters (got 3)" in short[2]


async def test_hoard_never_prints_a_payloads_escape_sequences(bb: Blackboard, cli_env: dict[str, str]) -> None:
    await bb.create_artefact(artefact(payload="\x1b[2J\x1b]0;pwned\x07", type_="Evil\x1b[31m", by="X\x9b1m"))
    (rc, out, err), (rc_jsonl, out_jsonl, _) = await asyncio.gather(
        holt(cli_env, "hoard", "-n", bb.instance),
        holt(cli_env, "hoard", "-n", bb.instance, "-o", "jsonl"),
    )
    assert rc == 0, err
    assert b"\x1b" not in out and b"\x07" not in out and "\x9b" not in out.decode()
    assert "␛[2J␛]0;pwned␇" in out.decode()
    assert rc_jsonl == 0 and b"\x1b" not in out_jsonl and b"\x07" not in out_jsonl
    assert json.loads(out_jsonl)["payload"] == "\x1b[2J\x1b]0;pwned\x07"


async def test_keys_written_by_anyone_cannot_reach_the_terminal(bb: Blackboard, cli_env: dict[str, str]) -> None:
    await bb.create_artefact(artefact(ident="deadbeef-0000-4000-8000-000000000001"))
    hostile_key = bb.keys.artefact("deadbeef\x1b]0;pwned\x07")
    await bb.redis.hset(hostile_key, mapping={**GO_ARTEFACT_HASH, "id": "x"})
    (rc_list, _, err_list), (rc_get, _, err_get) = await asyncio.gather(
        holt(cli_env, "hoard", "-n", bb.instance),
        holt(cli_env, "hoard", "-n", bb.instance, "deadbeef"),
    )
    assert rc_list == 0 and "Skipping malformed artefact: key=" in err_list
    assert rc_get == 1 and "ambiguous short ID 'deadbeef' matches 2 artefacts" in err_get
    assert "deadbeef␛]0;pwned␇" in err_get
    assert "\x1b" not in err_list + err_get and "\x07" not in err_list + err_get


async def test_flag_errors(bb: Blackboard, cli_env: dict[str, str]) -> None:
    await bb.create_artefact(artefact())
    bad_format, bad_watch_format, bad_since, bad_range, bad_instance, bad_name = await asyncio.gather(
        holt(cli_env, "hoard", "-n", bb.instance, "-o", "json"),
        holt(cli_env, "watch", "-n", bb.instance, "-o", "yaml"),
        holt(cli_env, "hoard", "-n", bb.instance, "--since", "yesterday"),
        holt(cli_env, "watch", "-n", bb.instance, "--since", "1h", "--until", "2h"),
        holt(cli_env, "unearth", "-n", "no-such-instance", "abcdef"),
        holt(cli_env, "watch", "-n", "Bad_Name"),
    )
    assert bad_format[:2] == (1, b"")
    assert bad_format[2].splitlines() == [
        "error: invalid output format",
        "  Unknown format: json",
        "hint: Valid formats: default, jsonl",
    ]
    assert bad_watch_format[0] == 1 and "Valid formats: default, jsonl, json" in bad_watch_format[2]
    assert bad_since[0] == 1
    assert bad_since[2].strip() == (
        "error: invalid --since: invalid time specification: yesterday "
        "(use duration like '1h30m' or RFC3339 like '2025-10-29T13:00:00Z')"
    )
    assert bad_range[0] == 1 and bad_range[2].strip() == "error: --since must be before --until"
    assert bad_instance[0] == 1 and "error: instance 'no-such-instance' not found" in bad_instance[2]
    assert bad_name[0] == 1 and "error: invalid instance name 'Bad_Name'" in bad_name[2]


# ---------------------------------------------------------------------------------------------
# unearth


async def test_unearth_prints_the_payload_byte_for_byte(bb: Blackboard, cli_env: dict[str, str]) -> None:
    text = "line one  \n\tline two\x1b[0m\n\n"
    plain = await bb.create_artefact(artefact(payload=text))
    # Bytes that are not UTF-8 survive too (another client may have written them).
    raw_id = new_id()
    raw = b"\xff\xfe binary \x00 payload"
    await bb.redis.hset(bb.keys.artefact(raw_id), mapping={**GO_ARTEFACT_HASH, "id": raw_id, "payload": raw})
    first, second, missing = await asyncio.gather(
        holt(cli_env, "unearth", "-n", bb.instance, plain.id[:10]),
        holt(cli_env, "unearth", "--name", bb.instance, raw_id),
        holt(cli_env, "unearth", "-n", bb.instance, "eeeeeeee"),
    )
    assert first[:2] == (0, text.encode()), first[2]
    assert second[:2] == (0, raw), second[2]
    assert missing[:2] == (1, b"") and "not found" in missing[2]


# ---------------------------------------------------------------------------------------------
# watch


async def test_watch_history_then_live_until_terminal(bb: Blackboard, cli_env: dict[str, str]) -> None:
    await write_go_records(bb)
    goal = await bb.create_artefact(artefact("GoalDefined", by="user", created=now_ms() - 60_000))
    watch = await Running.start(cli_env, "watch", "-n", bb.instance, "--since", "1h", "--exit-on-completion")
    try:
        # History is printed after the subscription is confirmed: from here on nothing can be missed.
        await watch.stdout_until(lambda line: goal.id in line)
        poem = await bb.create_artefact(artefact("Poem"))
        await bb.create_claim(Claim(id=new_id(), artefact_id=poem.id, status=ClaimStatus.PENDING_REVIEW))
        await watch.stdout_until(lambda line: "Claim created" in line and poem.id in line)
        done = await bb.create_artefact(artefact("Done", st=StructuralType.TERMINAL))
        assert await watch.finish() == 0, watch.err
    finally:
        watch.kill()
    out = "\n".join(watch.out)
    # The Go artefact has no timestamp: watch keeps it despite --since; its claim (and not its :bids
    # hash) is in the history.
    assert out.count(f"✨ Artefact created: by=user, type=GoalDefined, id={GO_ARTEFACT_ID}") == 1
    assert out.count(f"⏳ Claim created: claim={GO_CLAIM_ID}, artefact={GO_ARTEFACT_ID}, status=pending_review") == 1
    assert out.count(f"id={goal.id}") == 1
    assert f"✨ Artefact created: by=Poet, type=Poem, id={poem.id}" in out
    assert watch.out[-1].endswith(f"🎉 Workflow completed: Terminal artefact created (type=Done, id={done.id})")
    assert not [line for line in watch.err if "malformed" in line]


async def test_watch_jsonl_filters_artefacts_only(bb: Blackboard, cli_env: dict[str, str]) -> None:
    await bb.create_artefact(artefact("Done", st=StructuralType.STANDARD, created=now_ms() - 7_200_000))
    watch = await Running.start(
        cli_env, "watch", "-n", bb.instance, "-o", "json", "--type", "Do*", "--since", "1h", "--exit-on-completion"
    )
    try:
        await wait_subscribed(bb)
        poem = await bb.create_artefact(artefact("Poem"))  # filtered out
        claim = Claim(id=new_id(), artefact_id=poem.id, status=ClaimStatus.PENDING_REVIEW)
        await bb.create_claim(claim)  # claims always pass
        bid = {"claim_id": claim.id, "agent_name": "Poet", "bid_type": "exclusive"}
        await bb.publish_workflow_event(WorkflowEvent(event="bid_submitted", data=bid))
        done = await bb.create_artefact(artefact("Done", st=StructuralType.TERMINAL, payload="\x1b[2J"))
        assert await watch.finish() == 0, watch.err
    finally:
        watch.kill()
    records = [json.loads(line) for line in watch.out]
    assert [r["event"] for r in records] == ["claim_created", "bid_submitted", "artefact_created", "workflow_completed"]
    assert records[0]["data"] == claim.to_event()
    assert records[1]["data"] == bid
    assert records[2]["data"] == done.to_event()
    assert records[3]["data"] == {"artefact_id": done.id, "artefact_type": "Done", "produced_by": "Poet"}
    assert all(r["timestamp"].endswith("Z") and len(r["timestamp"]) == 20 for r in records)
    assert not any("\x1b" in line for line in watch.out)


async def test_watch_reconnects_and_misses_nothing(bb: Blackboard, cli_env: dict[str, str]) -> None:
    await bb.create_artefact(artefact("GoalDefined", by="user"))  # before the watch: never shown
    watch = await Running.start(cli_env, "watch", "-n", bb.instance, "--exit-on-completion")
    try:
        await wait_subscribed(bb)
        clients = [
            c for c in await bb.redis.client_list() if c.get("name") == "holt-watch" and int(c.get("sub", 0)) > 0
        ]
        assert len(clients) == 1
        await bb.redis.client_kill_filter(_id=clients[0]["id"])
        # Written while the watcher may be disconnected: it must appear exactly once either way.
        during = await bb.create_artefact(artefact("Poem", payload="during the outage"))
        await watch.stderr_until(lambda line: "Connection to blackboard lost. Reconnecting..." in line)
        await watch.stderr_until(lambda line: "Reconnected to blackboard" in line)
        await wait_subscribed(bb)
        done = await bb.create_artefact(artefact("Done", st=StructuralType.TERMINAL))
        assert await watch.finish() == 0, watch.err
    finally:
        watch.kill()
    out = "\n".join(watch.out)
    assert "GoalDefined" not in out
    assert out.count(f"id={during.id}") == 1
    assert f"Workflow completed: Terminal artefact created (type=Done, id={done.id})" in out
