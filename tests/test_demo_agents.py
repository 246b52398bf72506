"""The go-microservice demo's agents as Holt runs them (one JSON request on stdin, one JSON result on stdout),
without the engine: a bad LLM answer is retried or becomes a clear Failure, and any manual review payload
(free text, a JSON object, {}, the {"feedback", "by"} objects people inject) is taken without a crash."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "go-microservice"


def artefact(kind: str, payload: Any, role: str, *, structural: str = "Standard", sources: list[str] | None = None,
             version: int = 1) -> dict[str, Any]:
    ident = str(uuid.uuid4())
    return {"id": ident, "logical_id": ident, "version": version, "structural_type": structural, "type": kind,
            "payload": payload if isinstance(payload, str) else json.dumps(payload),
            "source_artefacts": sources or [], "produced_by_role": role, "created_at_ms": 0}


def run_agent(ws: Path, script: str, target: dict[str, Any], chain: list[dict[str, Any]] | None = None,
              env: dict[str, str] | None = None, *args: str) -> dict[str, Any]:
    request = {"claim_type": "exclusive", "target_artefact": target, "context_chain": chain or []}
    proc = subprocess.run([sys.executable, f"agents/{script}", *args], input=json.dumps(request), cwd=ws,
                          env={"PATH": "/usr/bin:/bin", "HOLT_WORKSPACE": str(ws), **(env or {})},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert isinstance(out, dict) and out["artefact_type"] and out["summary"], out
    return out


def as_artefact(out: dict[str, Any], role: str, sources: list[str]) -> dict[str, Any]:
    return artefact(out["artefact_type"], out["artefact_payload"], role, sources=sources,
                    structural=out.get("structural_type") or "Standard")


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(EXAMPLE, ws, ignore=shutil.ignore_patterns("__pycache__"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run([*git, *args], cwd=ws, check=True)
    return ws


# ------------------------------------------------------------------ a fake OpenAI-compatible endpoint


class FakeLLM:
    """Answers chat completions with the given texts in turn (the last one repeats); counts the calls."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.calls = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                text = fake.answers[min(fake.calls, len(fake.answers) - 1)]
                fake.calls += 1
                body = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "fake",
                                   "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant", "content": text}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def env(self) -> dict[str, str]:
        return {"HOLT_DEMO_LLM_BASE_URL": f"http://127.0.0.1:{self.server.server_address[1]}/v1",
                "HOLT_DEMO_LLM_MODEL": "fake", "HOLT_DEMO_LLM_API_KEY": "k", "HOLT_DEMO_LLM_TIMEOUT": "10"}


@pytest.fixture
def llm() -> Iterator[list[FakeLLM]]:
    made: list[FakeLLM] = []
    yield made
    for fake in made:
        fake.server.shutdown()
        fake.server.server_close()


def peer_question(ws: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    spec = (EXAMPLE / "agents" / "holtdemo" / "templates" / "openapi_v2.yaml").read_text()
    design = artefact("ApiDesign", {"spec": spec}, "Architect")
    question = artefact("ImplementationQuestion", "Which status code for a duplicate URL?", "Implementer",
                        structural="Question", sources=[design["id"]])
    return question, [design]


def test_a_bad_llm_answer_is_retried_then_a_clear_failure(ws: Path, llm: list[FakeLLM]) -> None:
    fake = FakeLLM(["this is not JSON"])
    llm.append(fake)
    question, chain = peer_question(ws)
    out = run_agent(ws, "architect.py", question, chain, fake.env)
    assert out["structural_type"] == "Failure" and out["artefact_type"] == "LLMBadAnswer"
    body = json.loads(out["artefact_payload"])
    assert "no usable answer after 3 attempts: the answer is not JSON" in body["error"]
    assert body["last_answer"] == "this is not JSON" and fake.calls == 3


@pytest.mark.parametrize(("text", "problem"), [
    ("", "the answer is empty"),
    ("   ", "the answer is empty"),
    ("this is not JSON", "the answer is not JSON"),
    ("[1, 2]", "the answer must be one JSON object"),
    ("{}", "the answer is an empty object"),
    ('{"can_answer": true}', "missing key 'answer'"),
    ('{"can_answer": true, "answer": 3}', "'answer' must be a str"),
    ('{"can_answer": true, "answer": " "}', "'answer' is empty"),
])
def test_what_makes_an_llm_answer_unusable(text: str, problem: str) -> None:
    sys.path.insert(0, str(EXAMPLE / "agents"))
    try:
        from holtdemo import llm as demo_llm
    finally:
        sys.path.remove(str(EXAMPLE / "agents"))
    check = demo_llm.need("can_answer", "answer", kinds={"answer": str})
    value, found = demo_llm.parse_answer(text, check)
    assert value is None and found is not None and found.startswith(problem)
    fenced = demo_llm.parse_answer('```json\n{"can_answer": true, "answer": "x"}\n```', check)
    assert fenced == ({"can_answer": True, "answer": "x"}, None)


def test_a_good_second_llm_answer_is_used_and_labelled(ws: Path, llm: list[FakeLLM]) -> None:
    fake = FakeLLM(["sure!", '```json\n{"can_answer": true, "answer": "409 with the Error body"}\n```'])
    llm.append(fake)
    question, chain = peer_question(ws)
    out = run_agent(ws, "architect.py", question, chain, fake.env)
    assert out["structural_type"] == "Answer" and fake.calls == 2
    assert out["artefact_payload"].startswith("409 with the Error body [LLM fake at http://127.0.0.1:")


def test_an_unreachable_llm_is_a_failure_not_a_crash(ws: Path) -> None:
    question, chain = peer_question(ws)
    env = {"HOLT_DEMO_LLM_BASE_URL": "http://127.0.0.1:9/v1", "HOLT_DEMO_LLM_MODEL": "m",
           "HOLT_DEMO_LLM_TIMEOUT": "5"}
    out = run_agent(ws, "architect.py", question, chain, env)
    assert out["structural_type"] == "Failure" and out["artefact_type"] == "LLMUnavailable"


# ------------------------------------------------------------------ manual reviews of any shape

PAYLOADS = [
    "please add rate limiting",                                  # free text
    json.dumps({"feedback": "please add rate limiting", "by": "human:alice"}),
    json.dumps({"issue": 3, "nested": {"a": [1, 2]}}),            # an object of no known shape
    "{}",                                                         # an (odd) empty review
    json.dumps("a JSON string"),
    json.dumps([{"problem": "x"}, "y"]),
]


def test_every_agent_takes_any_manual_review(ws: Path) -> None:
    goal = artefact("GoalDefined", "a bookmarks service with an OpenAPI 3 spec", "user")
    design = as_artefact(run_agent(ws, "architect.py", goal), "Architect", [goal["id"]])
    assert json.loads(design["payload"])["llm"].startswith("scripted responder")
    qa = [artefact("ImplementationQuestion", "dup?", "Implementer", structural="Question", sources=[design["id"]]),
          artefact("ProductQuestion", "how many?", "Implementer", structural="Question", sources=[design["id"]])]
    qa += [artefact("Answer", "409 Conflict", "Architect", structural="Answer", sources=[qa[0]["id"]]),
           artefact("Answer", "twelve hundred, maybe 1,200", "human:alice", structural="Answer",
                    sources=[qa[1]["id"]])]
    service = as_artefact(run_agent(ws, "implementer.py", design, [goal, *qa]), "Implementer", [design["id"]])
    decisions = json.loads(service["payload"])["decisions"]
    assert decisions["max_bookmarks"] == 1200 and decisions["duplicate_status"] == 409
    docs = as_artefact(run_agent(ws, "doc_writer.py", service, [goal, design]), "DocWriter", [service["id"]])
    merge = as_artefact(run_agent(ws, "final_reviewer.py", docs, [goal, design, service]), "FinalReviewer",
                        [docs["id"]])
    review = artefact("Review", {"findings": ["x"]}, "ApiStyleReviewer", structural="Review", sources=[design["id"]])
    reworks = [("architect.py", design, [goal]), ("implementer.py", service, [goal, design]),
               ("doc_writer.py", docs, [goal, design, service]), ("final_reviewer.py", merge, [goal, docs]),
               ("design_reviewer.py", review, [design]), ("coverage_gate.py", review, [design]),
               ("doc_reviewer.py", review, [design]), ("spec_validator.py", review, [design]),
               ("test_runner.py", review, [design])]
    for script, target, chain in reworks:
        # Every shape at once (an agent reads all the reviews of its target), then an empty one alone.
        for payloads in (PAYLOADS, ["{}"]):
            humans = [artefact("Review", p, "human:alice", structural="Review", sources=[target["id"]])
                      for p in payloads]
            out = run_agent(ws, script, {**target, "version": 2}, [*chain, *humans])
            assert out["artefact_type"] not in ("AgentError", "BadToolInput"), (script, payloads, out)
            assert out.get("structural_type") != "Failure", (script, payloads, out)
    merged = run_agent(ws, "merger.py", merge, [goal, docs])
    assert merged["structural_type"] == "Terminal" and json.loads(merged["artefact_payload"])["into"] == "main"
    terminal = as_artefact(merged, "Merger", [merge["id"]])
    human = artefact("Review", "why was this merged?", "human:bob", structural="Review", sources=[terminal["id"]])
    again = run_agent(ws, "merger.py", terminal, [merge, human])
    assert again["structural_type"] == "Terminal" and "already merged" in again["artefact_payload"]


def test_bad_tool_input_is_a_failure(ws: Path) -> None:
    proc = subprocess.run([sys.executable, "agents/implementer.py"], input="not json", cwd=ws, capture_output=True,
                          text=True, timeout=60)
    out = json.loads(proc.stdout)
    assert proc.returncode == 0 and out["structural_type"] == "Failure" and out["artefact_type"] == "AgentError"
