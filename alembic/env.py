"""Alembic environment: the models' metadata and the engine built from the same settings."""

from __future__ import annotations

from logging.config import fileConfig

from sqlalchemy import Connection

from alembic import context
from common.platform.db import get_engine
from common.platform.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=False,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    with get_engine().connect() as connection:
        run_with(connection)


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: the schema needs a database")
run_migrations_online()
