"""Run history: recorded runs and findings in a database, classified new / recurring / resolved, with acknowledgements.

`store.py` reaches the database (SQLAlchemy Core; Alembic migrations in `migrations/`),
`fingerprint.py` says what makes a finding the same across runs, `recording.py` records a run
while it writes its events.
"""
