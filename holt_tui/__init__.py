"""holt-tui: a full-screen debugger that attaches to a running Holt instance."""
