"""Who can take a ticket now: active, not away, within their working hours."""

from __future__ import annotations

from datetime import datetime

from ticketing.calendar import is_within, zone
from ticketing.users.models import User


def is_available(user: User, now: datetime) -> bool:
    if not user.is_active:
        return False
    if user.away_until is not None and user.away_until > now:
        return False
    return is_within(user.working_hours or [], zone(user.timezone), now)
