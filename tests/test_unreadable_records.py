"""A bad record never blinds anyone: a wrong-typed artefact key (a foreign client's SET) and a hash with
garbage fields are skipped, named once in a warning, and every reader goes on with the rest."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from holt_core.blackboard import Blackboard
from holt_core.config import parse_config
from holt_core.errors import MalformedRecord
from holt_core.models import StructuralType, now_ms
from tests.clirun import holt
from tests.engine import Engine, make_workspace, wait_for_artefact
from tests.test_cli_read import Running, artefact
from tests.tui.screen import screen_text
from tests.tui.test_live_attach import live_app, until

STRING_ID = "5717a9a0-0000-4000-8000-00000000000a"
GARBAGE_ID = "9a5ba9e0-0000-4000-8000-00000000000b"


async def plant_bad_records(bb: Blackboard) -> tuple[str, str]:
    """A string where an artefact hash belongs, and a hash of garbage fields; both indexed as if ours."""
    string_key, garbage_key = bb.keys.artefact(STRING_ID), bb.keys.artefact(GARBAGE_ID)
    await bb.redis.set(string_key, "written by a foreign client")
    await bb.redis.hset(garbage_key, mapping={"colour": "blue", "version": "many"})
    await bb.redis.zadd(bb.keys.artefact_index, {STRING_ID: now_ms(), GARBAGE_ID: now_ms()})
    return string_key, garbage_key


async def test_the_shared_reads_return_what_they_can_and_report_the_rest(bb: Blackboard) -> None:
    good = await bb.create_artefact(artefact())
    string_key, garbage_key = await plant_bad_records(bb)
    reported: list[str] = []
    bb.on_unreadable = lambda bad: reported.append(bad.key)

    listing = await bb.list_artefacts()
    assert [a.id for a in listing.artefacts] == [good.id]
    assert sorted(b.key for b in listing.malformed) == sorted([string_key, garbage_key])
    assert await bb.get_artefacts([STRING_ID, good.id, GARBAGE_ID]) == [None, good, None]
    rows = await bb.hgetall_many([string_key, bb.keys.artefact(good.id)])
    assert rows[0] == {} and rows[1]["id"] == good.id
    try:
        await bb.get_artefact(STRING_ID)
        raise AssertionError("a string is not an artefact")
    except MalformedRecord as bad:
        assert bad.key == string_key and "not a hash" in bad.reason
    claims, bad_claims = await bb.list_claims()
    assert claims == [] and bad_claims == []
    assert sorted(reported) == sorted([string_key, garbage_key])  # once each, however often read
    assert set(bb.unreadable) == {string_key, garbage_key}


async def test_hoard_watch_and_explain_skip_the_bad_record_and_name_it(
    bb: Blackboard, cli_env: dict[str, str]
) -> None:
    good = await bb.create_artefact(artefact("Poem", created=now_ms() - 60_000))
    string_key, garbage_key = await plant_bad_records(bb)

    (rc, out, err), (rc_x, out_x, err_x), (rc_g, _, err_g) = await asyncio.gather(
        holt(cli_env, "hoard", "-n", bb.instance, "-o", "jsonl"),
        holt(cli_env, "explain", "-n", bb.instance, STRING_ID),
        holt(cli_env, "explain", "-n", bb.instance, GARBAGE_ID),
    )
    assert rc == 0, err
    assert [json.loads(line)["id"] for line in out.decode().splitlines()] == [good.id]
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, err
    assert any(string_key in w and "not a hash" in w for w in warnings)
    assert any(garbage_key in w for w in warnings)
    for code, text in ((rc_x, err_x), (rc_g, err_g)):
        assert code in (0, 1) and "Traceback" not in text, text
    assert STRING_ID in out_x.decode()

    watch = await Running.start(cli_env, "watch", "-n", bb.instance, "--since", "1h", "--exit-on-completion")
    try:
        await watch.stdout_until(lambda line: good.id in line)
        await watch.stderr_until(lambda line: string_key in line)
        await bb.create_artefact(artefact("Done", st=StructuralType.TERMINAL))
        assert await watch.finish() == 0, watch.err
    finally:
        watch.kill()
    assert len([line for line in watch.err if line.startswith("warning:")]) == 2, watch.err
    assert any(garbage_key in line for line in watch.err)


TOOL = r'''
import json, sys
json.load(sys.stdin)
print(json.dumps({"artefact_type": "Done", "artefact_payload": "ok", "summary": "ok",
                  "structural_type": "Terminal"}))
'''

CONFIG = f"""
version: "1.0"
agents:
  Finisher:
    command: ["{sys.executable}", "tool.py"]
    bidding_strategy: exclusive
    sandbox: off
    workspace:
      mode: rw
"""


async def test_the_orchestrator_recovers_sweeps_and_completes_with_a_bad_record_present(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard
) -> None:
    await plant_bad_records(bb)
    ws = make_workspace(tmp_path, files={"holt.yml": CONFIG, "tool.py": TOOL})
    engine = Engine(redis_url, instance, ws, parse_config(CONFIG))
    await engine.start()  # recovery reads every artefact, the bad ones too
    try:
        await engine.forage("finish")
        await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL, 60)
        assert engine.orchestrator is not None
        await engine.orchestrator.sweep()  # raised WRONGTYPE before: the sweep reads the index
        assert set(engine.orchestrator.bb.unreadable) == {bb.keys.artefact(STRING_ID), bb.keys.artefact(GARBAGE_ID)}
    finally:
        await engine.close()


async def test_holt_tui_shows_the_rest_and_counts_what_it_skipped(redis_url: str, bb: Blackboard) -> None:
    good = await bb.create_artefact(artefact())
    await plant_bad_records(bb)
    app = live_app(redis_url, bb.instance)
    async with app.run_test(size=(160, 40)) as pilot:
        await until(lambda: good.id in app.model.artefacts, what="the readable artefact on screen")
        await until(lambda: len(app.model.skipped) == 2, what="both bad records counted")
        await pilot.pause(0.2)
        assert "⚠ 2 unreadable" in screen_text(app)
        assert app.model.connection == "live"
