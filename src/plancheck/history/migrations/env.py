"""Alembic environment: always run online on the connection the store hands over (no alembic.ini)."""

from alembic import context

from plancheck.history.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
