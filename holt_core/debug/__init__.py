"""The debugging control plane: breakpoints, held decisions, stepping, manual actions, control lease, explain.

Everything lives in Redis under ``holt:{inst}:debug:*``. The orchestrator consults the ``DebugGate`` at
every decision; clients (CLI, TUI) change the state only through ``DebugClient``.
"""
