"""Holt: a blackboard orchestrator for AI agents, with humans in the loop."""

# The one place the version is written (pyproject reads it from here): no importlib.metadata at start-up.
__version__ = "0.1.0"
