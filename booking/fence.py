"""The calendar fence: the one way to change a provider's calendar.

Every writer of a provider's bookings, time off or request outcomes first claims the
calendar version it read. The claim row-locks the provider, so a concurrent writer
waits for us and then finds the version moved; and it marks the provider as claimed
by this transaction, which the database's triggers (migration 0004) require before
any such write. A writer that skips the claim is refused by PostgreSQL itself."""

from __future__ import annotations

import uuid

from sqlalchemy import text


class StaleCalendar(Exception):
    """The provider's calendar version moved between our read and our write."""


# Plain SQL: `calendar_claimed_by` (xid8) is the triggers' business, not the models'.
CLAIM = text("UPDATE providers SET version = version + 1, calendar_claimed_by = pg_current_xact_id() "
             "WHERE id = :p_id AND version = :seen RETURNING version")
CLAIM_CURRENT = text("UPDATE providers SET version = version + 1, "
                     "calendar_claimed_by = pg_current_xact_id() WHERE id = :p_id RETURNING version")


def claim_statement(seen_version: int | None):
    """The claim for a version we read, or (admin edits that re-check everything under
    the lock they take) for whatever version is current."""
    return CLAIM if seen_version is not None else CLAIM_CURRENT


def claim_calendar(execute, provider_id: uuid.UUID, seen_version: int | None = None) -> int:
    """Claim the provider's calendar for this transaction; its new version. Raises
    StaleCalendar if `seen_version` is no longer current (or the provider is gone).
    `execute(statement, parameters)` runs a statement in the caller's transaction."""
    row = execute(claim_statement(seen_version), {"p_id": provider_id, "seen": seen_version}).fetchone()
    if row is None:
        raise StaleCalendar(provider_id)
    return row[0]
