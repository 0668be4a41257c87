"""Alembic environment: online migrations against the configured URL."""

from alembic import context
from sqlalchemy import create_engine, pool

import playbook_sync.builder.tables  # noqa: F401  (the builder's tables share Base)
from playbook_sync import models_learning  # noqa: F401  (its tables join Base.metadata)
from playbook_sync.models import Base
from playbook_sync.models_reports import PlaybookReport  # noqa: F401  (its tables join Base.metadata)

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
