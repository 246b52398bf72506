"""Bid script: reads the target artefact (JSON) on stdin, prints one bid word.

Arguments are TYPE=BID pairs; an artefact of any other type gets "ignore".
"""

import json
import sys

artefact = json.load(sys.stdin)
rules = dict(arg.split("=", 1) for arg in sys.argv[1:])
print(rules.get(artefact.get("type", ""), "ignore"))
