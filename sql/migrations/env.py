"""Alembic environment: runs on the connection handed over by ``pipeline.store.warehouse.migrate``."""

from alembic import context

from pipeline.store.warehouse import include_name, metadata

connection = context.config.attributes["connection"]
# the search index's own tables (pipeline.store.search_index) are not the metadata's: left alone
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  include_name=include_name)
with context.begin_transaction():
    context.run_migrations()
