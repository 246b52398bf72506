"""The engine: turns artefacts into claims and drives every claim through its phases.

One concept per module: ``rules`` (pure: a claim's facts in, the next decision out), ``grants`` (notify the
agent or launch a worker; worker slots; re-grants), ``effects`` (carry out one decision), ``orchestrator``
(events, recovery, the run loop). The claim record's one writer is ``holt_core.claims`` and the instance lock
is ``holt_core.lock``: clients use both, and importing them loads no engine module.
"""
