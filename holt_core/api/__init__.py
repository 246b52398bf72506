"""The approvals API: HTTP for people's tools and chat buttons, on the same rules as the CLI."""
