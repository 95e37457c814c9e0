"""The terminal user interface: rich renderings, the live agent-progress display, engine glue."""
