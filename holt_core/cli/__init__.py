"""The ``holt`` command line."""
