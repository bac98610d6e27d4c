"""Run history: recorded runs and findings in a database, classified new / recurring / resolved, with acknowledgements.

`store.py` reaches the database (SQLAlchemy Core), `schema.py` creates, migrates (Alembic,
`migrations/`) and checks it, `faults.py` says in one line what is wrong with it,
`fingerprint.py` says what makes a finding the same across runs, `recording.py` records a run
while it writes its events.
"""
