"""Engines and sessions, one engine per process (created after fork, on first use)."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
from sqlalchemy import Connection, Engine, Executable, create_engine
from sqlalchemy.orm import Session, sessionmaker

from booking.config import get_settings, require_database_url, sqlalchemy_url

_lock = threading.Lock()
_engine: Engine | None = None
_engine_pid: int | None = None
_session_factory: sessionmaker[Session] | None = None

REPO_ROOT = Path(__file__).resolve().parent.parent
POOL_OVERFLOW = 10


def get_engine() -> Engine:
    """The process's engine. A pool never crosses a fork: a child makes its own."""
    global _engine, _engine_pid, _session_factory
    if _engine is None or _engine_pid != os.getpid():
        with _lock:
            if _engine is None or _engine_pid != os.getpid():
                _engine = create_engine(
                    sqlalchemy_url(require_database_url()),
                    # Opened as needed, up to BOOKING_DB_POOL_SIZE + POOL_OVERFLOW, and kept: an
                    # overflow connection (max_overflow) is closed as soon as it is handed back,
                    # so every burst wider than the pool paid a new backend per query. A burst of
                    # a few hundred woken long-polls spent its time connecting, not querying.
                    pool_size=get_settings().db_pool_size + POOL_OVERFLOW,
                    max_overflow=0,
                    # No pre-ping: it costs a round trip per checkout (13 % of web time in the
                    # profile). Connections are recycled instead; one broken by a database
                    # restart fails one statement and is then discarded by the pool.
                    pool_recycle=300,
                    pool_timeout=10,
                    # A server that drops packets answers 503 in seconds, not a hang.
                    connect_args={"options": session_options(), "connect_timeout": 3,
                                  **keepalives()},
                    # Errors and logs never print statement parameters: a callback URL's
                    # query string or a customer id is no business of a log file.
                    hide_parameters=True,
                )
                _session_factory = sessionmaker(_engine, expire_on_commit=False)
                _engine_pid = os.getpid()
    return _engine


def session_options() -> str:
    """Bounds on how long a transaction can hold a provider. A decision worker paused
    mid-transaction (GC, VM steal, SIGSTOP) would otherwise keep the provider's row
    lock, and so its whole queue, long after its lease expired: PostgreSQL ends such a
    session after the lease's TTL, its late commit fails, and the next holder waits
    for a lock at most that long too."""
    ttl_ms = get_settings().lease_ttl_ms
    return f"-c idle_in_transaction_session_timeout={ttl_ms} -c lock_timeout={ttl_ms}"


def keepalives() -> dict[str, int]:
    """TCP keepalives sized like the lease. A worker waiting on PostgreSQL across a
    partition, whose server has meanwhile dropped the connection, would otherwise wait
    for the OS default (over two hours) before noticing, with a thread, a message and a
    pooled connection stuck."""
    idle_s = max(1, get_settings().lease_ttl_ms // 1000)
    return {"keepalives": 1, "keepalives_idle": idle_s,
            "keepalives_interval": max(1, idle_s // 3), "keepalives_count": 3}


def autocommit() -> Connection:
    """A connection on which each statement commits on its own. For a single read or a
    single self-contained write it saves two round trips: the BEGIN the driver sends
    first, and the ROLLBACK the pool sends when the connection comes back."""
    return get_engine().connect().execution_options(isolation_level="AUTOCOMMIT")


@contextlib.contextmanager
def driver_autocommit() -> Iterator[psycopg.Connection]:
    """A pooled connection as the bare psycopg driver, each statement committing on its
    own, for the few hottest single statements. Measured on one single-row read:
    psycopg 82 us of CPU, through SQLAlchemy Core 187 us, plus 85 us for switching the
    pooled connection to autocommit and back through SQLAlchemy."""
    pooled = get_engine().raw_connection()
    driver = pooled.driver_connection
    driver.autocommit = True
    try:
        yield driver
    finally:
        if driver.broken:
            # Lost with its server: discard it here. Handed back, the pool's reset would
            # fail on it and log a traceback, once for every request of a database outage.
            pooled.invalidate()
        else:
            with contextlib.suppress(psycopg.Error):
                driver.autocommit = False  # as the pool hands it out
            pooled.close()


@functools.cache
def _compiled(statement: Executable) -> tuple[str, dict]:
    compiled = statement.compile(dialect=get_engine().dialect)
    # the values SQLAlchemy itself bound (literals such as 'queued'); ours come at run time
    values, names = compiled.params, compiled.bind_names  # names: bind -> its name in the SQL
    return str(compiled), {names[bind]: values[names[bind]] for bind in compiled.binds.values()
                           if not bind.required}


def driver_query(statement: Executable, parameters: dict) -> tuple[str, dict]:
    """A SQLAlchemy statement (compiled once) as psycopg's SQL text with %(name)s
    parameters, and the parameters to run it with."""
    sql, bound = _compiled(statement)
    return sql, {**bound, **parameters}


def new_session() -> Session:
    get_engine()
    return _session_factory()


def migrate(database_url: str | None = None) -> None:
    """Bring the schema to the newest revision (`alembic upgrade head`)."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["configure_logging"] = False
    if database_url:
        config.attributes["database_url"] = database_url
    command.upgrade(config, "head")
