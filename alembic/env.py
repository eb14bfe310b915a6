"""Alembic environment: the models' metadata and the database named by the same settings.

Called in-process with `config.attributes["connection"]`, it migrates that connection and starts
nothing. As the `alembic` command in local mode without `AI_INFRA_DATABASE_URL`, it uses the
running `ai-infra dev` stack's database or starts the embedded Postgres for the command
(`common.localstack.database`); in cloud mode, the Cloud SQL settings or the URL.
"""

from __future__ import annotations

from logging.config import fileConfig

from sqlalchemy import Connection

from alembic import context
from common.platform.config import ConfigError

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def run_with(connection: Connection) -> None:
    # The models read the settings on import (the embedding dimension): import them only once
    # the settings are those of the database being migrated.
    from common.ingestion.project_indexes import include_in_autogenerate
    from common.platform.models import Base

    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        compare_server_default=False,
        include_object=include_in_autogenerate,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return

    from common.localstack.database import database_settings
    from common.platform.db import build_engine

    try:
        with database_settings() as settings:
            engine = build_engine(settings)
            try:
                with engine.connect() as connection:
                    run_with(connection)
            finally:
                engine.dispose()
    except ConfigError as error:
        raise SystemExit(f"alembic: {' '.join(str(error).split())}") from None


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: the schema needs a database")
run_migrations_online()
