"""The attach scan reads a page of the artefact index with one SORT_RO (the hashes' fields read server-side), and
reads exactly the same (records, order, and the bad records named) where Redis refuses SORT_RO and the reader
falls back to an HMGET per artefact. Real Redis, real ACL users."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from holt_core.acl import role_rules, role_url, setuser_args, with_user
from holt_core.blackboard import Blackboard
from holt_tui.config import TuiConfig
from holt_tui.feed import FeedItem, ScanPage, WorkflowSeen
from holt_tui.reader import Reader
from holt_tui.sources import null_sources
from tests.test_cli_read import artefact
from tests.test_unreadable_records import plant_bad_records


async def scan(url: str, instance: str, first_page: int) -> tuple[list[list[str]], list[tuple[str, str]]]:
    """The ids of each page of one attach scan, and the bad records it named (key, reason)."""
    items: list[FeedItem] = []
    done = asyncio.Event()

    def sink(item: FeedItem) -> None:
        items.append(item)
        if isinstance(item, ScanPage) and item.last:
            done.set()

    task = asyncio.create_task(Reader(url, instance, sink, null_sources(), TuiConfig(first_page=first_page)).run())
    try:
        await asyncio.wait_for(done.wait(), 30)
    finally:
        task.cancel()
    pages = [[a.id for a in item.artefacts] for item in items if isinstance(item, ScanPage)]
    bad = [(str(item.event.data["key"]), str(item.event.data["reason"])) for item in items
           if isinstance(item, WorkflowSeen) and item.event.event == "malformed_record"]
    return pages, bad


async def sort_ro_calls(redis: Any) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_sort_ro", {}).get("calls", 0))


async def test_a_page_is_one_sort_ro_and_reads_as_the_hmget_fallback_does(redis_url: str, bb: Blackboard) -> None:
    written = [await bb.create_artefact(artefact(created=1_000 + n)) for n in range(12)]
    await plant_bad_records(bb)  # a string at an artefact key and a hash of garbage, both indexed
    viewer = role_url(redis_url, "viewer")  # what a read-only attach connects as
    before = await sort_ro_calls(bb.redis)
    pages, bad = await scan(viewer, bb.instance, first_page=5)
    assert await sort_ro_calls(bb.redis) - before == 2  # the index's two pages: the newest 5, then the rest
    oldest_first = [a.id for a in written]
    assert pages[0] == oldest_first[::-1][:3]  # the newest page first (the two bad records are newer still)
    assert pages[1] == oldest_first[:9]
    assert {key for key, _reason in bad} == set(await plant_bad_records(bb))  # both named (skipped, not fatal)
    # A user that may read everything but not run SORT_RO (as on a Redis before 7.0): the reader falls back to
    # an HMGET per artefact and reads the same pages and names the same bad records.
    user = f"holt-test-nosort-{uuid.uuid4().hex[:8]}"
    await bb.redis.execute_command("ACL", "SETUSER", *setuser_args(user, "pw", (*role_rules("viewer"), "-sort_ro")))
    try:
        before = await sort_ro_calls(bb.redis)
        assert await scan(with_user(redis_url, user, "pw"), bb.instance, first_page=5) == (pages, bad)
        assert await sort_ro_calls(bb.redis) == before  # refused calls are not counted as calls
    finally:
        await bb.redis.execute_command("ACL", "DELUSER", user)
