"""The migrations both ways, on a database of their own in the test PostgreSQL."""

import uuid

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from booking.config import sqlalchemy_url
from booking.db import REPO_ROOT


def alembic_config(url: str) -> Config:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["configure_logging"] = False
    config.attributes["database_url"] = url
    return config


def test_every_migration_goes_down_and_up_again(stack, db):
    name = f"migrations_{uuid.uuid4().hex[:8]}"
    admin = create_engine(sqlalchemy_url(stack.postgres.url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = stack.postgres.url.rsplit("/", 1)[0] + f"/{name}"
    try:
        config = alembic_config(url)
        command.upgrade(config, "head")
        command.downgrade(config, "0003")  # the calendar fence, its columns and triggers
        command.downgrade(config, "base")
        command.upgrade(config, "head")
        engine = create_engine(sqlalchemy_url(url))
        with engine.connect() as conn:
            triggers = set(conn.scalars(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")))
        engine.dispose()
        assert triggers == {"bookings_require_claim", "time_off_require_claim",
                            "booking_requests_outcome_require_claim"}
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()
