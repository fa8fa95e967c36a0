"""Test-only row triggers, to make the database misbehave on cue (a fault, a stall, a
refusal) for a given customer id. Installed for one test and always removed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import text


@contextlib.contextmanager
def row_trigger(db, name: str, table: str, body: str, counter: str | None = None) -> Iterator[None]:
    """BEFORE INSERT ... FOR EACH ROW running the plpgsql `body` (which may read NEW).
    `counter`, if given, is a sequence made afresh for the body to nextval(): unlike a
    table, it keeps counting through the rolled-back transactions it is there to count."""
    with db.begin() as conn:
        if counter:
            conn.execute(text(f"CREATE SEQUENCE IF NOT EXISTS {counter}"))
            conn.execute(text(f"ALTER SEQUENCE {counter} RESTART"))
        conn.execute(text(f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                          f"BEGIN {body} RETURN NEW; END $$"))
        conn.execute(text(f"CREATE TRIGGER {name} BEFORE INSERT ON {table} "
                          f"FOR EACH ROW EXECUTE FUNCTION {name}()"))
    try:
        yield
    finally:
        with db.begin() as conn:
            conn.execute(text(f"DROP TRIGGER {name} ON {table}"))
            conn.execute(text(f"DROP FUNCTION {name}()"))
