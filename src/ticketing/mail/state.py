"""The mailbox reader's lease and health, in the `mailbox_state` row named "imap".

The lease makes one process at a time read the mailbox, whichever processes run: a process
takes it only when it is free or expired (one atomic UPDATE), renews it well before it expires
while reading, and releases it on a clean shutdown. A process that dies simply stops renewing,
and another takes over once the lease has run out. Even two readers at once (a paused process
that wakes after losing its lease) could not handle a message twice: the inbound log is unique
on the message's mailbox key; the lease is what keeps them from doing the work twice.

Health (status, last error, last success) is recorded in the same row by whoever reads, so
any process's `/health/ready` can show it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from ticketing.db import Database, utcnow
from ticketing.mail.models import MailboxState

MAILBOX = "imap"
ERROR_MAX_CHARS = 1000


async def acquire_lease(db: Database, holder: str, seconds: float, name: str = MAILBOX) -> bool:
    """Take (or keep) the lease if it is free, expired or already ours. True when held."""
    now = utcnow()
    try:
        async with db.transaction() as session:
            result = await session.execute(
                update(MailboxState)
                .where(
                    MailboxState.name == name,
                    or_(
                        MailboxState.holder == holder,
                        MailboxState.holder.is_(None),
                        MailboxState.lease_until.is_(None),
                        MailboxState.lease_until < now,
                    ),
                )
                .values(holder=holder, lease_until=now + timedelta(seconds=seconds), updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if _rowcount(result) == 1:
                return True
            if await session.scalar(select(MailboxState.name).where(MailboxState.name == name)):
                return False
            session.add(
                MailboxState(
                    name=name,
                    holder=holder,
                    lease_until=now + timedelta(seconds=seconds),
                    status="starting",
                    updated_at=now,
                )
            )
        return True
    except IntegrityError:
        return False  # another process created the row at the same moment, and holds it


async def renew_lease(
    db: Database,
    holder: str,
    seconds: float,
    *,
    healthy: bool | None = None,
    name: str = MAILBOX,
) -> bool:
    """Extend our lease; False when it is no longer ours (then stop reading at once).

    `healthy=True` also stamps `last_ok_at` (the mailbox answered since the last renewal)."""
    now = utcnow()
    values: dict[str, Any] = {"lease_until": now + timedelta(seconds=seconds), "updated_at": now}
    if healthy:
        values |= {"status": "ok", "last_ok_at": now}
    async with db.transaction() as session:
        result = await session.execute(
            update(MailboxState)
            .where(MailboxState.name == name, MailboxState.holder == holder)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1


async def release_lease(db: Database, holder: str, name: str = MAILBOX) -> None:
    """Give the lease up (a clean shutdown): another process may take it at once."""
    async with db.transaction() as session:
        await session.execute(
            update(MailboxState)
            .where(MailboxState.name == name, MailboxState.holder == holder)
            .values(holder=None, lease_until=None, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )


async def record_health(
    db: Database,
    holder: str,
    error: str | None = None,
    *,
    outage_began: bool = False,
    name: str = MAILBOX,
) -> None:
    """Record how reading goes, while holding the lease: "ok", or "error" with what failed.

    `last_error_at` is when the current outage began (`outage_began`), so `since` stays put
    while the reader retries."""
    now = utcnow()
    values: dict[str, Any] = {"updated_at": now}
    if error is None:
        values |= {"status": "ok", "last_ok_at": now}
    else:
        values |= {"status": "error", "last_error": error[:ERROR_MAX_CHARS]}
        if outage_began:
            values |= {"last_error_at": now}
    async with db.transaction() as session:
        await session.execute(
            update(MailboxState)
            .where(MailboxState.name == name, MailboxState.holder == holder)
            .values(**values)
            .execution_options(synchronize_session=False)
        )


async def mailbox_health(db: Database, name: str = MAILBOX) -> dict[str, Any]:
    """What /health/ready shows about the mailbox: `status` is "ok", "error" (with `error` and
    `since`), "starting", or "not running" (no process holds the lease: no worker reads it)."""
    async with db.sessionmaker() as session:
        state = await session.get(MailboxState, name)
    if state is None:
        return {"status": "not running", "reader": None}
    now = utcnow()
    running = state.holder is not None and state.lease_until is not None and state.lease_until > now
    body: dict[str, Any] = {
        "status": state.status if running else "not running",
        "reader": state.holder if running else None,
        "last_ok_at": _iso(state.last_ok_at),
    }
    if state.last_error is not None:
        body["last_error"] = state.last_error
        body["last_error_at"] = _iso(state.last_error_at)
    if running and state.status == "error":
        body["error"] = state.last_error
        body["since"] = _iso(state.last_error_at)
    return body


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
