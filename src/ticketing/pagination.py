"""Opaque cursor pagination over (created_at, id), newest first unless asked otherwise."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar, TypeVarTuple

from pydantic import BaseModel
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

from ticketing.errors import InvalidField

T = TypeVar("T")
_Row = TypeVarTuple("_Row")
Order = Literal["newest", "oldest"]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_ID = re.compile(r"[!-~]{1,64}")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at in UTC, id) a cursor of `encode_cursor` holds; 422 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = json.loads(raw)
        if not isinstance(created, str) or not isinstance(row_id, str):
            raise TypeError
        moment = datetime.fromisoformat(created)
        # Our ids are printable ASCII; anything else (a JSON-escaped lone surrogate, say)
        # would fail in the database driver.
        if moment.tzinfo is None or not _ID.fullmatch(row_id):
            raise ValueError
        # An offset that pushes the moment outside the years datetime can hold overflows here
        # (e.g. 0001-01-01T00:00:00+23:59), rather than in the database driver.
        return moment.astimezone(UTC), row_id
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidField("Invalid cursor") from exc


def paginate(
    stmt: Select[Any],
    created_col: InstrumentedAttribute[datetime],
    id_col: InstrumentedAttribute[str],
    *,
    limit: int,
    cursor: str | None,
    order: Order = "newest",
) -> Select[Any]:
    """Apply keyset pagination; fetches limit+1 rows so the caller can tell if there is more."""
    if cursor:
        moment, row_id = decode_cursor(cursor)
        # The plain bound on created_at is implied by the OR, but it is what lets PostgreSQL and
        # SQLite start the index scan at the cursor instead of filtering every row above it.
        if order == "newest":
            stmt = stmt.where(
                created_col <= moment,
                or_(created_col < moment, and_(created_col == moment, id_col < row_id)),
            )
        else:
            stmt = stmt.where(
                created_col >= moment,
                or_(created_col > moment, and_(created_col == moment, id_col > row_id)),
            )
    if order == "newest":
        stmt = stmt.order_by(created_col.desc(), id_col.desc())
    else:
        stmt = stmt.order_by(created_col.asc(), id_col.asc())
    return stmt.limit(limit + 1)


def encode_nullable_cursor(moment: datetime | None, row_id: str) -> str:
    raw = json.dumps([moment.isoformat() if moment else None, row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_nullable_cursor(cursor: str) -> tuple[datetime | None, str]:
    """A cursor of `encode_nullable_cursor`: (moment or None, id); 422 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, row_id = json.loads(raw)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidField("Invalid cursor") from exc
    if moment is None and isinstance(row_id, str) and _ID.fullmatch(row_id):
        return None, row_id
    return decode_cursor(cursor)


def paginate_soonest(
    stmt: Select[Any],
    moment_col: InstrumentedAttribute[datetime | None],
    id_col: InstrumentedAttribute[str],
    *,
    limit: int,
    cursor: str | None,
) -> Select[Any]:
    """Keyset pagination by a nullable time, soonest first and rows without one last."""
    if cursor:
        moment, row_id = decode_nullable_cursor(cursor)
        if moment is None:
            stmt = stmt.where(moment_col.is_(None), id_col > row_id)
        else:
            stmt = stmt.where(
                or_(
                    moment_col > moment,
                    and_(moment_col == moment, id_col > row_id),
                    moment_col.is_(None),
                )
            )
    return stmt.order_by(moment_col.asc().nulls_last(), id_col.asc()).limit(limit + 1)


def soonest_ranges(
    stmt: Select[*_Row],
    moment_col: Any,
    id_col: Any,
    *,
    limit: int,
    cursor: str | None,
) -> list[Select[*_Row]]:
    """`paginate_soonest` as two index ranges, each ordered and cut to limit + 1: the rows with
    a time, soonest first, then those without, by id. The page is the first limit + 1 of the
    two in that order. SQLite's indexes hold NULL first, so "rows without one last" cannot
    follow an index in one query: it sorted every matching row."""
    timed = stmt.where(moment_col.is_not(None))
    untimed = stmt.where(moment_col.is_(None))
    if cursor:
        moment, row_id = decode_nullable_cursor(cursor)
        if moment is None:
            return [untimed.where(id_col > row_id).order_by(id_col.asc()).limit(limit + 1)]
        timed = timed.where(or_(moment_col > moment, and_(moment_col == moment, id_col > row_id)))
    return [
        timed.order_by(moment_col.asc(), id_col.asc()).limit(limit + 1),
        untimed.order_by(id_col.asc()).limit(limit + 1),
    ]


def page_of_soonest(rows: list[Any], limit: int, moment: str) -> tuple[list[Any], str | None]:
    """`page_of` for `paginate_soonest`."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_nullable_cursor(getattr(rows[-1], moment), rows[-1].id)


def page_of(
    rows: list[Any], limit: int, *, moment: str = "created_at"
) -> tuple[list[Any], str | None]:
    """Split the limit+1 rows of `paginate` into the page and the next cursor. `moment`: the
    attribute the rows were sorted by, with their id (as given to `paginate`)."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor(getattr(last, moment), last.id)
