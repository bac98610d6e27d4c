"""Sinks: where results go (JSON lines, text for people, SARIF, files replaced atomically)."""
