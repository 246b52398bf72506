"""Structured logs: JSON lines, and INFO events deferred out of the event loop's way."""

from __future__ import annotations

import asyncio
import calendar
import io
import json
import logging
import time
from collections.abc import Iterator

import pytest

from holt_core import logs
from holt_core.logs import EventLogger, JsonFormatter, configure, flush_logs
from tests.engine import poll


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger("holt")
    saved = (list(root.handlers), root.level, root.propagate)
    out = io.StringIO()
    configure(out)
    try:
        yield out
    finally:
        flush_logs()
        root.handlers[:], root.level, root.propagate = saved


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_outside_an_event_loop_a_line_is_written_at_once(stream: io.StringIO) -> None:
    EventLogger("orchestrator", "inst").info("claim_created", claim_id="c1")
    [line] = lines(stream)
    assert line["event_type"] == "claim_created" and line["level"] == "info" and line["component"] == "orchestrator"
    assert line["instance"] == "inst" and line["claim_id"] == "c1"


async def test_info_inside_the_loop_is_written_after_the_work_keeping_its_own_time(stream: io.StringIO) -> None:
    log = EventLogger("orchestrator", "inst")
    log.info("artefact_received", artefact_id="a1")
    assert stream.getvalue() == ""  # not on the path of the work that logged it
    await poll(lambda: stream.getvalue(), within=5, what="the deferred line")
    [line] = lines(stream)
    assert line["event_type"] == "artefact_received" and str(line["timestamp"]).endswith("Z")


async def test_a_warning_goes_out_at_once_after_what_was_pending(stream: io.StringIO) -> None:
    log = EventLogger("pup", "inst")
    log.info("bid_submitted", claim_id="c1")
    log.warning("tool_failed", claim_id="c1")
    assert [line["event_type"] for line in lines(stream)] == ["bid_submitted", "tool_failed"]


async def test_a_backlog_is_written_in_slices_in_order(stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "DEFER_S", 0.0)
    monkeypatch.setattr(logs, "SLICE_GAP_S", 60.0)  # the second slice would come a minute later
    log = EventLogger("orchestrator", "inst")
    total = 3 * logs.SLICE + 1
    for n in range(total):
        log.info("bid_received", n=n)
    await poll(lambda: stream.getvalue(), within=5, what="the first slice")
    assert [line["n"] for line in lines(stream)] == list(range(logs.SLICE))  # one slice, not the backlog
    flush_logs()
    assert [line["n"] for line in lines(stream)] == list(range(total))


async def test_flush_logs_writes_everything_pending(stream: io.StringIO) -> None:
    EventLogger("pup", "inst").info("pup_ready")
    flush_logs()
    assert [line["event_type"] for line in lines(stream)] == ["pup_ready"]


async def test_lines_written_in_a_batch_are_the_formatters_lines(stream: io.StringIO) -> None:
    EventLogger("orchestrator", "inst").info("claim_created", claim_id="c1", note="é\u001b[31m")
    flush_logs()
    batch_line = stream.getvalue().splitlines()[0]
    record = logging.makeLogRecord({"levelno": logging.INFO, "levelname": "INFO", "msg": "claim_created",
                                    "holt_fields": {"component": "orchestrator", "instance": "inst",
                                                    "event_type": "claim_created", "claim_id": "c1",
                                                    "note": "é\u001b[31m"}})
    record.created = json_time(json.loads(batch_line)["timestamp"])
    assert batch_line == JsonFormatter().format(record)


def json_time(stamp: object) -> float:
    return calendar.timegm(time.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ"))


async def test_a_warning_from_a_worker_thread_comes_after_what_the_loop_logged(stream: io.StringIO) -> None:
    log = EventLogger("pup", "inst")
    for n in range(40):
        log.info("bid_submitted", n=n)
    await asyncio.to_thread(log.warning, "tool_failed")
    written = lines(stream)
    assert [line.get("n") for line in written[:-1]] == list(range(40))
    assert written[-1]["event_type"] == "tool_failed"
    await asyncio.sleep(logs.DEFER_S * 2)  # the timer that was pending finds nothing left to write
    assert len(lines(stream)) == 41
