"""``holt-tui attach`` loads only what its first frame needs (issue 14): checked through ``sys.modules`` of the real
command in a fresh interpreter, at the moment the artefact list first draws rows, not by time. What acting needs
(the human-in-the-loop and debugging planes, redis-py for the control connection) loads after that frame."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from holt_core.blackboard import Blackboard
from holt_core.keys import Keys
from holt_core.models import Artefact, StructuralType, new_id
from holt_tui.main import attach_sources_for, later_sources_for
from holt_tui.sources import ActionResult, NullDebugSource, NullInboxSource, Sources, deferred_sources

# Runs ``holt-tui attach ARGS`` as the console script does, headless. Writes the loaded modules to $DUMP/first.json
# when the artefact list first draws a row, and to $DUMP/later.json once the app also holds the control lease.
_DRIVER = """
import asyncio, gc, json, os, sys, time
from pathlib import Path
from importlib.machinery import PathFinder

dump = Path(os.environ["DUMP"])

def patch(module):
    from holt_tui.widgets.views import ArtefactGraph
    App = module.App

    async def later(pilot):
        deadline = time.monotonic() + 60
        while not (pilot.app.lease.held and (dump / "first.json").exists()) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        (dump / "later.json").write_text(json.dumps({"modules": sorted(sys.modules), "lease": pilot.app.lease.message,
                                                     "gc": gc.isenabled()}))
        pilot.app.exit()

    module.HoltTui.run = lambda self, *a, **k: App.run(self, headless=True, size=(120, 40), auto_pilot=later)
    draw = ArtefactGraph.render_line
    def render_line(self, y):
        if self.items and not (dump / "first.json").exists():
            (dump / "first.json").write_text(json.dumps({"modules": sorted(sys.modules), "gc": gc.isenabled()}))
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

# Not before the first frame: the engine, redis-py (with the OpenTelemetry SDK its observability imports), the
# control planes and their adapter, cryptography (audit checkpoint signatures), holt.yml's parser and models, the
# dialogs (with Textual's TextArea).
NOT_BEFORE_FIRST_FRAME = (
    "holt_core.engine", "holt_core.orchestrator", "redis", "opentelemetry", "cryptography", "holt_core.hitl",
    "holt_core.debug", "holt_tui.core_sources", "yaml", "holt_core.config", "holt_tui.screens.dialogs",
    "textual.widgets._text_area",
)


def prefixed(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


async def test_attach_loads_only_what_its_first_frame_needs_and_the_control_planes_after_it(
        tmp_path: Path, cli_env: dict[str, str], bb: Blackboard) -> None:
    await bb.create_artefact(Artefact(id=new_id(), logical_id=new_id(), version=1, type="GoalDefined",
                                      structural_type=StructuralType.STANDARD, payload="x", produced_by_role="user"))
    env = {**cli_env, "DUMP": str(tmp_path), "NO_COLOR": "1"}  # monochrome: every drawn segment needs a style
    env.pop("HOLT_OPERATOR_TOKEN", None)  # the admin URL acts as the login name, recorded as impersonation
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", _DRIVER, bb.instance, env=env,
                                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                stderr=subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode(errors="replace")
    assert (tmp_path / "first.json").exists(), err.decode(errors="replace")[-2000:]
    first = json.loads((tmp_path / "first.json").read_text())
    assert "holt_tui.reader" in first["modules"] and "textual.app" in first["modules"]  # it did attach and draw
    assert prefixed(first["modules"], NOT_BEFORE_FIRST_FRAME) == []
    assert not first["gc"]  # start-up runs without the cyclic collector ...
    later = json.loads((tmp_path / "later.json").read_text())
    assert later["lease"].startswith("control"), later["lease"]  # the deferred planes did load, and took control
    assert "holt_tui.core_sources" in later["modules"]
    assert later["gc"]  # ... which is on again once the first page is on screen


async def test_the_later_sources_subscribe_to_the_channels_of_the_sources_they_stand_for(redis_url: str) -> None:
    real = attach_sources_for(redis_url, "t-chan", "alice")
    later = later_sources_for(redis_url, "t-chan", "alice", asyncio.Event().wait)
    assert later.inbox.channels() == real.inbox.channels() == [Keys("t-chan").hitl_events]
    assert later.debug.channels() == real.debug.channels()
    assert later.debug.capabilities() == real.debug.capabilities()


class _Counting(NullInboxSource):
    async def answer(self, item_id: str, text: str) -> ActionResult:
        return ActionResult(True, f"answered {item_id}: {text}")


async def test_deferred_sources_build_once_after_ready_and_pass_every_call_on() -> None:
    built: list[Sources] = []
    ready = asyncio.Event()

    def build() -> Sources:
        built.append(Sources(_Counting(), NullDebugSource()))
        return built[-1]

    sources = deferred_sources(build, ready.wait, inbox_channels=["in"], debug_channels=["dbg"],
                               capabilities=frozenset({"step"}))
    assert (sources.inbox.channels(), sources.debug.channels(), sources.debug.capabilities()) == \
        (["in"], ["dbg"], frozenset({"step"}))
    calls = [asyncio.create_task(sources.inbox.answer("q1", "yes")), asyncio.create_task(sources.debug.pause())]
    await asyncio.sleep(0)
    assert built == [] and not any(c.done() for c in calls)  # nothing is built before ready
    ready.set()
    answered, paused = await asyncio.gather(*calls)
    assert len(built) == 1  # one build, however many callers waited
    assert answered == ActionResult(True, "answered q1: yes")
    assert not paused.ok  # the null debugger's refusal, passed on as it came
