"""Alembic environment: runs on the connection handed over by ``pipeline.store.warehouse.migrate``."""

from alembic import context

from pipeline.store.warehouse import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
