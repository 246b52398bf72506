"""Bid script: the target artefact (JSON) on stdin, one bid word out. Arguments are TYPE=BID pairs."""

import json
import sys

try:
    artefact = json.load(sys.stdin)
except ValueError:
    artefact = {}
rules = dict(arg.split("=", 1) for arg in sys.argv[1:])
print(rules.get(artefact.get("type", "") if isinstance(artefact, dict) else "", "ignore"))
