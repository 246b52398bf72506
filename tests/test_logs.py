"""Structured logs: JSON lines, and INFO events deferred out of the event loop's way."""

from __future__ import annotations

import asyncio
import calendar
import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from holt_core import logs
from holt_core.blackboard import connect_redis
from holt_core.logs import EventLogger, JsonFormatter, configure, flush_logs
from holt_core.supervisor import read_state
from tests.engine import make_workspace, poll, python_agents


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


# ---------------------------------------------------------------------------------------------
# Ids on every line, observers, size rotation


def test_lines_carry_the_ids_and_the_context(stream: io.StringIO) -> None:
    log = EventLogger("pup", "inst")
    with logs.log_context(workflow_id="w1", trace_id="t1"):
        log.warning("tool_failed", claim_id="c1", artefact_id="a1", reason="boom")
    log.warning("tool_failed", claim_id="c2")
    first, second = lines(stream)
    assert {k: first[k] for k in ("level", "component", "instance", "workflow_id", "claim_id", "artefact_id",
                                  "trace_id")} == {"level": "warning", "component": "pup", "instance": "inst",
                                                   "workflow_id": "w1", "claim_id": "c1", "artefact_id": "a1",
                                                   "trace_id": "t1"}
    assert calendar.timegm(time.strptime(str(first["timestamp"]), "%Y-%m-%dT%H:%M:%SZ")) > 0
    assert "workflow_id" not in second and second["claim_id"] == "c2"


def test_a_plain_message_names_the_component_and_instance(stream: io.StringIO) -> None:
    logs.set_process_identity("Echo", "inst")
    try:
        logging.getLogger("holt.lib").warning("something odd")
    finally:
        logs._PROCESS.clear()
    [line] = lines(stream)
    assert line["component"] == "Echo" and line["instance"] == "inst" and line["message"] == "something odd"


def test_observers_see_every_event_even_below_the_level(stream: io.StringIO) -> None:
    seen: list[tuple[int, dict[str, object]]] = []

    def observer(level: int, payload: dict[str, object]) -> None:
        seen.append((level, payload))

    logging.getLogger("holt").setLevel(logging.WARNING)
    logs.add_observer(observer)
    try:
        EventLogger("orchestrator", "inst").info("claim_created", claim_id="c1")
    finally:
        logs.remove_observer(observer)
    EventLogger("orchestrator", "inst").info("claim_created", claim_id="c2")
    assert [(lvl, p["event_type"], p["claim_id"]) for lvl, p in seen] == [(logging.INFO, "claim_created", "c1")]
    assert lines(stream) == []


def test_rotating_file_rotates_at_a_line_boundary(tmp_path: Path) -> None:
    path = tmp_path / "pup.log"
    path.write_bytes(b"old\n")
    out = logs.RotatingFile(path, max_bytes=20, backups=2)
    out.write(b"0123456789\n")
    out.write(b"abcdefghij\nklm")  # past 20 bytes at a line end: a new file first
    out.write(b"no\n")
    out.write(b"0123456789\nxyz")  # a new file again; its last line goes on in the next chunk
    out.write(b"!\n")
    out.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pup.log", "pup.log.1", "pup.log.2"]
    assert (tmp_path / "pup.log.2").read_bytes() == b"old\n0123456789\n"
    assert (tmp_path / "pup.log.1").read_bytes() == b"abcdefghij\nklmno\n"
    assert path.read_bytes() == b"0123456789\nxyz!\n"


def test_a_log_file_added_beside_stderr_rotates_by_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``holt up --foreground`` writes supervisor.log through this: it rotates like every other log."""
    monkeypatch.setenv(logs.ENV_LOG_MAX_BYTES, "600")
    monkeypatch.setenv(logs.ENV_LOG_BACKUPS, "2")
    root = logging.getLogger("holt")
    saved = (list(root.handlers), root.level, root.propagate)
    configure(io.StringIO())
    path = tmp_path / "supervisor.log"
    try:
        logs.add_log_file(path)
        for n in range(40):
            EventLogger("supervisor", "inst").warning("component_exited", component="Echo", n=n)
    finally:
        flush_logs()
        for handler in root.handlers[1:]:
            handler.close()
        root.handlers[:], root.level, root.propagate = saved
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["supervisor.log", "supervisor.log.1", "supervisor.log.2"]
    for p in tmp_path.iterdir():
        text = p.read_text()
        assert len(text) < 600 + 400 and text.endswith("\n")
        assert all(json.loads(line)["event_type"] == "component_exited" for line in text.splitlines())
    assert json.loads(path.read_text().splitlines()[-1])["n"] == 39


HOLT = str(Path(sys.executable).parent / "holt")
ONE_AGENT = python_agents("""\
version: "1.0"
agents:
  Echo:
    command: ["python3", "-c", "import json; print(json.dumps({'artefact_type': 'Done', 'artefact_payload': 'ok', \
'summary': 'ok', 'structural_type': 'Terminal'}))"]
    bidding_strategy: exclusive
""")


async def test_every_log_of_a_running_instance_rotates_by_size(tmp_path: Path, cli_env: dict[str, str],
                                                               redis_url: str, instance: str) -> None:
    """supervisor.log (the detached supervisor's own log, its stdout and stderr), the orchestrator's, the pup's
    and the API's logs all rotate at HOLT_LOG_MAX_BYTES, keeping HOLT_LOG_BACKUPS files."""
    ws = make_workspace(tmp_path, files={"holt.yml": ONE_AGENT})
    env = {**cli_env, logs.ENV_LOG_MAX_BYTES: "250", logs.ENV_LOG_BACKUPS: "2"}
    log_dir = ws / ".holt" / "logs" / instance

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([HOLT, *args], cwd=ws, env=env, capture_output=True, text=True, timeout=120)

    up = await asyncio.to_thread(run, "up", "--name", instance)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        forage = await asyncio.to_thread(run, "forage", "--goal", "hello", "--name", instance, "--watch")
        assert forage.returncode == 0, forage.stdout + forage.stderr
        state = read_state(log_dir)
        assert state is not None

        def rotated() -> bool:
            names = {p.name for p in log_dir.iterdir()}
            return {"supervisor.log.1", "orchestrator.log.1", "Echo.log.1", "api.log.1"} <= names

        await poll(rotated, 30, "every component's log to rotate")
        # The supervisor's stdout and stderr follow its current log file, not a rotated one.
        for fd in (1, 2):
            assert os.readlink(f"/proc/{state.supervisor_pid}/fd/{fd}") == str(log_dir / "supervisor.log")
    finally:
        down = await asyncio.to_thread(run, "down", "--name", instance)
        assert down.returncode == 0, down.stderr
        client = connect_redis(redis_url)
        try:
            keys = [k async for k in client.scan_iter(match=f"holt:{instance}:*", count=1000)]
            if keys:
                await client.delete(*keys)
            await client.hdel("holt:instances", instance)
        finally:
            await client.aclose()
    for path in log_dir.glob("*.log*"):
        assert not path.name.endswith(".3")  # two backups kept
        if path.name != "state.json":
            assert path.stat().st_size < 250 + 4000, path  # at most one long line past the limit
