"""Holt: a blackboard orchestrator for AI agents, with humans in the loop."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("holt")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+local"
