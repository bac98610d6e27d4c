"""Checks: each takes validated inputs and returns findings and summaries."""
