"""Agent tools for the HITL tests (copied into each test workspace as agents.py).

    agents.py bid TYPE=BID ...          bid script: the bid for the target's type, else ignore
    agents.py asker ASK                 asks a Question (ask=ASK) unless an Answer is in its context
    agents.py architect                 writes a Design; answers peer questions about databases
    agents.py deployer RISK             declares a deploy action needing approval; reports a rejection
    agents.py implementer               writes Code for whatever it is granted
Every run appends one line to runs.log in the workspace, so tests can count executions.
"""

import json
import os
import sys


def out(artefact_type, payload, structural="", **extra):
    body = {"artefact_type": artefact_type, "artefact_payload": payload, "summary": artefact_type}
    if structural:
        body["structural_type"] = structural
    body.update(extra)
    print(json.dumps(body))


def log(line):
    with open(os.path.join(os.environ.get("HOLT_WORKSPACE", "."), "runs.log"), "a") as f:
        f.write(line + "\n")


mode = sys.argv[1]
if mode == "bid":
    artefact = json.load(sys.stdin)
    rules = dict(arg.split("=", 1) for arg in sys.argv[2:])
    print(rules.get(artefact.get("type", ""), "ignore"))
    sys.exit(0)

request = json.load(sys.stdin)
target = request["target_artefact"]
chain = request["context_chain"]
log(f"{os.environ['HOLT_AGENT_NAME']} {target['type']} {target['structural_type']} "
    f"{','.join(a['type'] for a in chain)}")
answers = [a for a in chain if a["structural_type"] == "Answer" and a["type"] == "Answer"]
questions = [a for a in chain if a["structural_type"] == "Question"]

if mode == "asker":
    if answers:
        out("Result", f"asked {questions[-1]['payload'] if questions else '?'}; answer was: {answers[-1]['payload']}",
            "Terminal")
    else:
        out("Clarification", "Which database should we use?", "Question", ask=sys.argv[2])
elif mode == "architect":
    if target["structural_type"] == "Question":  # a peer question routed to us
        if "database" in target["payload"] and os.environ.get("ARCHITECT_KNOWS", "1") == "1":
            out("Answer", "PostgreSQL 16", "Answer")
        else:
            out("Clarification", "I do not know either", "Question")
    else:
        out("Design", "a web service")
elif mode == "deployer":
    decisions = [json.loads(a["payload"]) for a in chain if a["type"] == "ApprovalDecision"]
    if any(d["outcome"] == "rejected" for d in decisions):
        reason = next(d.get("reason", "") for d in decisions if d["outcome"] == "rejected")
        out("DeployCancelled", f"not deployed: {reason}", "Terminal")
    else:
        out("DeployPlan", "deploy v2 to prod", requires_approval={
            "action": "deploy", "target": "prod", "plan": {"steps": ["drain", "switch", "verify"]},
            "risk": sys.argv[2]})
elif mode == "implementer":
    out("Code", f"code for {target['type']}", "Terminal")
else:
    sys.exit(f"unknown mode {mode}")
