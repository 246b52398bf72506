"""The TUI's widgets; every big list is a virtual line-API view (``LineList``)."""
