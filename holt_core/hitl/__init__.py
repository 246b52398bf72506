"""Humans in the loop: questions, approval gates, deadlines, notifications (hitl-and-debugging.md)."""
