"""holt-tui at scale: attach to an instance with 100k artefacts, then press keys while 1,000 events/s arrive.

Measures (medians over ``--repeat`` attaches):
- first useful frame: from app start until the artefact list shows rows (the newest page of the index);
- fully loaded: until every artefact is in the model and the list shows all of them;
- memory: RSS growth of this process from before the app starts to fully loaded;
- key latency: ``j``/``k`` presses (each put in the app's queue as a terminal key would be), from the press to the
  first line the list draws with its cursor on the next row, while another process writes 1,000 artefacts a
  second, each announced on pub/sub;
- stall: the longest the event loop was late for a 10 ms timer, from app start to the end of the key test
  (``stall_max_at_s``: when, in seconds after app start; the load ends at ``loaded_s``), and
  ``stall_after_first_frame_ms``: the same from the first frame on (the load and the key test, without the
  app's start: composing, styling and laying out holt-tui's widgets; ``stall_floor_start_ms`` is a minimal
  Textual app's start, for comparison);
- CPU seconds of this process for the load (``loaded_cpu_s``) and the key test (``keys_cpu_s``), and the machine's
  load average (``load_avg_1m``): on a shared machine, compare CPU seconds; ``--profile PATH`` writes cProfile
  stats of both phases;
- whole process: from spawning a fresh Python that runs ``holt-tui attach INSTANCE`` as people run it (holt_tui.main
  with typer, Redis lookup, the instance check, operator authentication) to its first frame with artefacts
  (headless, same size), and the floor measured in the same run: a minimal Textual app's first frame, whole
  process; and their ratio. ``--first-frame-only`` measures just these two, alternating.

    .venv/bin/python bench/tui_attach.py                      # 100k artefacts, 3 attaches
    .venv/bin/python bench/tui_attach.py --artefacts 20000 --repeat 1
    .venv/bin/python bench/tui_attach.py --instance bench-tui-keep --keep   # populate once, reuse after

Also printed, as floors of the same run: ``stall_floor_ms``, the longest an idle event loop in this process was
late for the same 10 ms timer over 3 s before each attach (what the machine's load alone costs),
``stall_floor_start_ms``, the longest stall of a minimal Textual app's start (in this process, same size), and
``floor_textual_first_frame_s``.

Uses HOLT_REDIS_URL if set, else the embedded Redis (started if needed). The bench instance is deleted after.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult
from textual.widgets import Static

from holt_core.blackboard import Blackboard, connect_redis
from holt_core.embedded_redis import resolve_redis_url
from holt_core.models import Artefact, StructuralType, dumps, new_id, now_ms
from holt_core.transaction import _LUA as TX_LUA
from holt_tui.app import HoltTui
from holt_tui.config import TuiConfig
from holt_tui.feed import FeedItem
from holt_tui.reader import Reader
from holt_tui.sources import null_sources
from holt_tui.widgets.views import ArtefactGraph

PER_WORKFLOW = 100
BATCH = 1000


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def artefact(source: str | None, n: int, t: int) -> Artefact:
    return Artefact(id=new_id(), logical_id=new_id(), version=1, structural_type=StructuralType.STANDARD,
                    type="GoalDefined" if source is None else f"Step{n % 7}",
                    payload=dumps({"n": n, "text": "x" * 80}), source_artefacts=[source] if source else [],
                    produced_by_role="user" if source is None else f"Agent{n % 5}", created_at_ms=t)


async def populate(bb: Blackboard, count: int) -> list[str]:
    """``count`` artefacts in workflows of 100 (a goal and a chain), written as pipelined Tx batches."""
    roots: list[str] = []
    previous: str | None = None
    t0 = now_ms() - count
    pending: list[Any] = []
    for n in range(count):
        a = artefact(None if n % PER_WORKFLOW == 0 else previous, n, t0 + n)
        if a.source_artefacts == []:
            roots.append(a.id)
        previous = a.id
        pending.append(bb.artefact_tx(a)[1])
        if len(pending) == BATCH or n == count - 1:
            async with bb.redis.pipeline(transaction=False) as pipe:
                for tx in pending:
                    # The Tx script (as TxRunner runs it), queued on the pipeline: one round trip per batch.
                    pipe.eval(TX_LUA, len(tx.keys), *tx.keys, dumps({"g": tx.guards, "o": tx.ops}))
                await pipe.execute()
            pending.clear()
    return roots


def writer_process(url: str, instance: str, roots: list[str], rate: int, seconds: float) -> None:
    """Runs in its own process (``--writer``) so the writing does not share the TUI's CPU time slice."""

    async def run() -> None:
        bb = Blackboard(connect_redis(url), instance)
        print("ready", flush=True)
        per_step = max(rate // 100, 1)
        loop = asyncio.get_running_loop()
        start = loop.time()
        n = 0
        while loop.time() - start < seconds:
            async with bb.redis.pipeline(transaction=False) as pipe:
                for _ in range(per_step):
                    tx = bb.artefact_tx(artefact(random.choice(roots), n, now_ms()))[1]
                    pipe.eval(TX_LUA, len(tx.keys), *tx.keys, dumps({"g": tx.guards, "o": tx.ops}))
                    n += 1
                await pipe.execute()
            await asyncio.sleep(max(start + n / rate - loop.time(), 0))
        await bb.close()

    asyncio.run(run())


class StallMonitor:
    """The longest the event loop was late for a 10 ms timer (a stall blocks keys and paints alike)."""

    def __init__(self) -> None:
        self.worst_ms = 0.0
        self.worst_at = 0.0  # when the worst stall ended (loop time), to tell the load's from the key test's
        self.started = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        self.started = loop.time()
        while True:
            t = loop.time()
            await asyncio.sleep(0.01)
            late = (loop.time() - t - 0.01) * 1000
            if late > self.worst_ms:
                self.worst_ms, self.worst_at = late, loop.time()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None


FLOOR_APP = """
import asyncio, sys
from textual.app import App
from textual.widgets import Static
class Minimal(App[None]):
    def compose(self):
        yield Static("hello")
    def on_mount(self):
        self.call_after_refresh(lambda: print("painted", flush=True))
async def main():
    async with Minimal().run_test(size=(160, 50)):
        await asyncio.sleep(30)
asyncio.run(main())
"""


# The whole ``holt-tui attach INSTANCE`` as people run it (typer, Redis lookup, the instance check, operator
# authentication, the reader), imported as the console script imports it: the child runs holt_tui.main and nothing
# of this bench. An import hook changes two things once holt_tui.app is loaded: the app runs headless at 160x50,
# and the artefact list's first drawn line with rows writes "painted" (to the real stdout) and ends the process.
ATTACH_APP = """
import os, sys
from importlib.machinery import PathFinder

def patch(module):
    from holt_tui.widgets.views import ArtefactGraph
    App = module.App
    module.HoltTui.run = lambda self, *a, **k: App.run(self, headless=True, size=(160, 50))
    draw = ArtefactGraph.render_line
    def render_line(self, y):
        if self.items:
            os.write(1, b"painted\\n")
            os._exit(0)
        return draw(self, y)
    ArtefactGraph.render_line = render_line

class Hook:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != "holt_tui.app":
            return None
        sys.meta_path.remove(Hook)
        spec = PathFinder.find_spec(name, path, target)
        load = spec.loader.exec_module
        def exec_module(module):
            load(module)
            patch(module)
        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, Hook)
sys.argv = ["holt-tui", "attach", *sys.argv[1:]]
from holt_tui.main import run
run()
"""


async def first_frame_process(argv: list[str]) -> float:
    """Seconds from spawning ``argv`` to its ``painted`` line (the child is killed right after)."""
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    errors = asyncio.ensure_future(proc.stderr.read())
    try:
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), 120)
            if not line or line.strip() == b"painted":
                break
        elapsed = time.perf_counter() - t0
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    if not line:
        raise RuntimeError(f"{argv[:3]} ended before painting: {(await errors).decode(errors='replace')[-2000:]}")
    errors.cancel()
    return elapsed


async def attach_once(url: str, instance: str, total: int, roots: list[str], rate: int,
                      seconds: float, profile: str = "") -> dict[str, float]:
    config = TuiConfig(animations=False, cursor_blink=False)
    # --profile: cProfile of the load (app start to fully loaded) and of the key test, in two files.
    profiler = cProfile.Profile() if profile else None

    first_sunk: list[float] = []

    async def start(sink: Callable[[FeedItem], None]) -> None:
        def timed(item: FeedItem) -> None:
            if not first_sunk and type(item).__name__ == "ScanPage":
                first_sunk.append(time.perf_counter())
            sink(item)

        await Reader(url, instance, timed, null_sources(), config).run()

    rss0 = rss_mb()
    app = HoltTui(instance, start, config=config, read_only=True)
    stalls = StallMonitor()
    stalls.start()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    if profiler is not None:
        profiler.enable()
    out: dict[str, float] = {}
    async with app.run_test(size=(160, 50)):
        app_mounted = time.perf_counter()
        graph = app.query_one(ArtefactGraph)
        painted: list[float] = []
        painted_at: list[str | None] = []  # the row under the cursor when each line was drawn
        draw = graph.render_line

        def timed_render_line(y: int) -> Any:
            if graph.items:
                painted.append(time.perf_counter())
                painted_at.append(graph.current_key)
            return draw(y)

        graph.render_line = timed_render_line  # type: ignore[method-assign]
        while not painted:  # noqa: ASYNC110 (polling the app's state is the measurement)
            await asyncio.sleep(0.002)
        out["app_mounted_s"] = app_mounted - t0
        out["first_frame_s"] = painted[0] - t0
        # From the first frame on (the load and the key test), without the app's start (composing, styling and
        # laying out its widgets; a minimal app's start is ``stall_floor_start_ms``).
        running = StallMonitor()
        running.start()
        out["first_page_read_s"] = first_sunk[0] - t0
        while app.model.loading or len(app.model.artefacts) < total or app.feed:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        mark = time.perf_counter()
        graph.refresh()  # loaded: the next paint is the fully loaded frame
        while painted[-1] < mark:  # noqa: ASYNC110
            await asyncio.sleep(0.002)
        out["loaded_s"] = painted[-1] - t0
        out["loaded_cpu_s"] = time.process_time() - cpu0
        out["rss_mb"] = rss_mb() - rss0
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(f"{profile}.load")
            profiler = cProfile.Profile()
        if rate > 0:
            roots_file = Path(tempfile.mkstemp(prefix="holt-bench-roots-")[1])
            roots_file.write_text("\n".join(roots))  # noqa: ASYNC240 (once, before measuring)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--writer", url, instance, str(roots_file), str(rate), str(seconds),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
            assert proc.stdout is not None
            await asyncio.wait_for(proc.stdout.readline(), 30)
            await asyncio.sleep(1.0)  # let the stream reach steady state
            latencies: list[float] = []
            cpu1 = time.process_time()
            if profiler is not None:
                profiler.enable()
            before = len(app.model.artefacts)
            keys = ["j", "k"]
            deadline = time.perf_counter() + seconds - 2
            while time.perf_counter() < deadline:
                row = graph.current_key
                seen = len(painted)
                k0 = time.perf_counter()
                # Key latency: the key goes into the app's queue as a terminal key would; it counts until the
                # list draws its first line with the cursor on another row (a drain moves the cursor's index when
                # rows land above it, never its row; the list repaints only the lines that change).
                app.simulate_key(keys[len(latencies) % 2])
                while True:
                    drawn = next((i for i in range(seen, len(painted)) if painted_at[i] != row), None)
                    if drawn is not None:
                        break
                    seen = len(painted)
                    await asyncio.sleep(0.0005)
                latencies.append((painted[drawn] - k0) * 1000)
                await asyncio.sleep(0.1)
            stalls.stop()  # the key test's end (the writer's last second and the app's exit are not measured)
            running.stop()
            graph.render_line = draw  # type: ignore[method-assign]
            out["keys_cpu_s"] = time.process_time() - cpu1
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(f"{profile}.keys")
            await asyncio.wait_for(proc.wait(), seconds + 30)
            roots_file.unlink()  # noqa: ASYNC240
            arrived = len(app.model.artefacts) - before
            latencies.sort()
            out["key_ms_median"] = statistics.median(latencies)
            out["key_ms_p95"] = latencies[min(int(len(latencies) * 0.95), len(latencies) - 1)]
            out["keys_pressed"] = len(latencies)
            out["events_applied_per_s"] = arrived / (seconds - 1)
    stalls.stop()
    running.stop()
    out["stall_max_ms"] = stalls.worst_ms
    out["stall_max_at_s"] = stalls.worst_at - stalls.started  # seconds after app start (loaded_s: the load's end)
    out["stall_after_first_frame_ms"] = running.worst_ms
    out["load_avg_1m"] = os.getloadavg()[0]  # the machine's load at the end of the attach (shared machine)
    return out


class _Minimal(App[None]):
    """FLOOR_APP's app, in this process: what a Textual app's start alone does to the stall figure."""

    def compose(self) -> ComposeResult:
        yield Static("hello")


async def floor_start_stall() -> float:
    """The longest stall from a minimal Textual app's start to 0.5 s after it is running (same size, headless)."""
    monitor = StallMonitor()
    monitor.start()
    async with _Minimal().run_test(size=(160, 50)):
        await asyncio.sleep(0.5)
    monitor.stop()
    return monitor.worst_ms


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artefacts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rate", type=int, default=1000, help="live artefacts per second during the key test")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--instance", default="", help="use (and populate once) this instance, e.g. to compare "
                        "two source trees on the same data; roots are kept in a file beside the bench's data")
    parser.add_argument("--keep", action="store_true", help="leave the instance in Redis afterwards")
    parser.add_argument("--first-frame-only", action="store_true", help="measure only the whole-process first "
                        "frames (the floor and holt-tui attach, alternating), --repeat times")
    parser.add_argument("--profile", default="", metavar="PATH", help="write cProfile stats of the in-process "
                        "attach to PATH.load (start to fully loaded) and PATH.keys (the key test); slows both")
    args = parser.parse_args()
    url = resolve_redis_url()
    instance = args.instance or f"bench-tui-{uuid.uuid4().hex[:8]}"
    bb = Blackboard(connect_redis(url), instance)
    roots_path = Path(tempfile.gettempdir()) / f"holt-bench-{instance}.roots"
    try:
        have = int(await bb.redis.zcard(bb.keys.artefact_index))
        if args.instance and have >= args.artefacts and roots_path.exists():
            roots = roots_path.read_text().split()
            print(f"reusing {have:,} artefacts of {instance}")
        else:
            t = time.perf_counter()
            roots = await populate(bb, args.artefacts)
            roots_path.write_text("\n".join(roots))
            print(f"populated {args.artefacts:,} artefacts in {time.perf_counter() - t:.1f}s")
        runs = []
        if args.first_frame_only:
            for i in range(args.repeat):
                floor = await first_frame_process([sys.executable, "-c", FLOOR_APP])
                whole = await first_frame_process([sys.executable, "-c", ATTACH_APP, instance])
                runs.append({"floor_textual_first_frame_s": floor, "process_first_frame_s": whole,
                             "process_first_frame_ratio": whole / floor})
                print(f"run {i + 1}: " + ", ".join(f"{k}={v:.3f}" for k, v in runs[-1].items()))
            args.repeat = 0
        for i in range(args.repeat):
            idle = StallMonitor()
            idle.start()
            await asyncio.sleep(3.0)
            idle.stop()
            total = int(await bb.redis.zcard(bb.keys.artefact_index))
            result = await attach_once(url, instance, total, roots, args.rate, args.seconds, args.profile)
            floor = await first_frame_process([sys.executable, "-c", FLOOR_APP])
            whole = await first_frame_process([sys.executable, "-c", ATTACH_APP, instance])
            result["stall_floor_ms"] = idle.worst_ms
            result["stall_floor_start_ms"] = await floor_start_stall()
            result["floor_textual_first_frame_s"] = floor
            result["process_first_frame_s"] = whole
            result["process_first_frame_ratio"] = whole / floor
            runs.append(result)
            print(f"run {i + 1}: " + ", ".join(f"{k}={v:.3f}" for k, v in result.items()))
        if not runs:
            return
        print("medians (targets: loaded_s <= 3, rss_mb <= 150, key_ms_p95 < 100, stall_after_first_frame_ms <= 100, "
              "process_first_frame_ratio <= 3):")
        for key in runs[0]:
            print(f"  {key:<22} {statistics.median(r[key] for r in runs):.3f}")
    finally:
        if not args.keep:
            keys = [k async for k in bb.redis.scan_iter(match=f"{bb.keys.prefix}*", count=5000)]
            for start in range(0, len(keys), 5000):
                await bb.redis.delete(*keys[start : start + 5000])
            roots_path.unlink(missing_ok=True)
        await bb.close()


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--writer":
        _, _, w_url, w_instance, w_roots, w_rate, w_seconds = sys.argv
        writer_process(w_url, w_instance, Path(w_roots).read_text().split(), int(w_rate), float(w_seconds))
    else:
        asyncio.run(main())
