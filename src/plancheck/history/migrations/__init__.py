"""Alembic migrations of the run-history database, shipped inside the package (see store.py)."""
