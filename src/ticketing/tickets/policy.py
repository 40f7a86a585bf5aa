"""Who may see a ticket, who may change what on it, and how its status may move.

Every rule about access to a ticket lives here, once. The API reports the outcome to clients
(`allowed_status`, `allowed_fields` on each ticket) so that no client copies these rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import ColumnElement

from ticketing.errors import Conflict, Forbidden
from ticketing.tickets.models import Ticket
from ticketing.users.models import User
from ticketing.vocabulary import Role, TicketStatus


class Party(StrEnum):
    """How a person stands to one ticket."""

    creator = "creator"  # filed it (the requester)
    staff = "staff"  # works it: its assignee, or any admin
    admin = "admin"


_S = TicketStatus
_STAFF = frozenset({Party.staff})
_STAFF_OR_CREATOR = frozenset({Party.staff, Party.creator})
_ADMIN_OR_CREATOR = frozenset({Party.admin, Party.creator})

# (from, to) -> who may make the move. A move not listed is a conflict with the state (409).
# `waiting` is "waiting on the requester": their reply moves the ticket back (see
# `move_on_requester_reply`).
TRANSITIONS: dict[tuple[TicketStatus, TicketStatus], frozenset[Party]] = {
    (_S.open, _S.in_progress): _STAFF,
    (_S.open, _S.resolved): _STAFF,
    (_S.in_progress, _S.resolved): _STAFF,
    (_S.in_progress, _S.open): _STAFF,
    (_S.open, _S.waiting): _STAFF,
    (_S.in_progress, _S.waiting): _STAFF,
    (_S.waiting, _S.open): _STAFF,
    (_S.waiting, _S.in_progress): _STAFF,
    (_S.waiting, _S.resolved): _STAFF,
    (_S.resolved, _S.closed): _STAFF_OR_CREATOR,
    (_S.resolved, _S.open): _STAFF_OR_CREATOR,
    (_S.open, _S.closed): _ADMIN_OR_CREATOR,
    (_S.in_progress, _S.closed): _ADMIN_OR_CREATOR,
    (_S.waiting, _S.closed): _ADMIN_OR_CREATOR,
}


def move_on_requester_reply(user: User, ticket: Ticket) -> TicketStatus | None:
    """The status a reply by `user` moves `ticket` to, if any: the requester answering a
    ticket that waits on them, or writing on a resolved one (which reopens it)."""
    if ticket.created_by != user.id:
        return None
    if ticket.status in (TicketStatus.waiting, TicketStatus.resolved):
        return TicketStatus.open
    return None


# Fields of PATCH /tickets/{id} other than status, and who may change each.
FIELD_PARTIES: dict[str, frozenset[Party]] = {
    "priority": _STAFF,
    "ticket_type": _STAFF,
    "required_skills": _STAFF,
    "assigned_to": frozenset({Party.admin}),
}


def parties(user: User, ticket: Ticket) -> frozenset[Party]:
    found: set[Party] = set()
    if user.role == Role.admin:
        found |= {Party.admin, Party.staff}
    elif user.role == Role.moderator and ticket.assigned_to == user.id:
        found.add(Party.staff)
    if ticket.created_by == user.id:
        found.add(Party.creator)
    return frozenset(found)


def can_see(user: User, ticket: Ticket) -> bool:
    return bool(parties(user, ticket))


def visible_alternatives(user: User) -> list[ColumnElement[bool]] | None:
    """`can_see` as SQL conditions on tickets, any one of which makes a ticket visible (None:
    everything). Kept apart rather than OR-ed so that a list can read each from its own index
    (see tickets.repository.list_page)."""
    if user.role == Role.admin:
        return None
    if user.role == Role.moderator:
        return [Ticket.assigned_to == user.id, Ticket.created_by == user.id]
    return [Ticket.created_by == user.id]


def _staff_only(mine: frozenset[Party]) -> bool:
    return Party.admin in mine or (Party.staff in mine and Party.creator not in mine)


def sees_staff_only(user: User, ticket: Ticket) -> bool:
    """Whether `user` reads and writes internal notes, and sees staff-only events and fields:
    admins, and the ticket's assignee unless they filed it. A requester never does (a
    moderator who files a ticket is its requester there), unless an admin."""
    return _staff_only(parties(user, ticket))


def _actions(user: User, mine: frozenset[Party]) -> list[str]:
    actions = []
    if _staff_only(mine):
        actions.append("internal_notes")
    if user.role == Role.admin:
        actions.append("reanalyze")
    return actions


def _statuses(ticket: Ticket, mine: frozenset[Party]) -> list[TicketStatus]:
    return [to for (start, to), who in TRANSITIONS.items() if start == ticket.status and who & mine]


def _fields(ticket: Ticket, mine: frozenset[Party]) -> list[str]:
    return [
        name
        for name, who in FIELD_PARTIES.items()
        if who & mine and not (name == "assigned_to" and ticket.status == TicketStatus.closed)
    ]


def allowed_actions(user: User, ticket: Ticket) -> list[str]:
    """What else `user` may do with `ticket`: `internal_notes` (see `sees_staff_only`) and
    `reanalyze` (queue a new analysis)."""
    return _actions(user, parties(user, ticket))


def allowed_status(user: User, ticket: Ticket) -> list[TicketStatus]:
    """The statuses `user` may move `ticket` to now."""
    return _statuses(ticket, parties(user, ticket))


def allowed_fields(user: User, ticket: Ticket) -> list[str]:
    """The fields other than status `user` may change on `ticket` now."""
    return _fields(ticket, parties(user, ticket))


@dataclass(frozen=True, slots=True)
class Grants:
    """Everything a ticket's representation says `user` may do, worked out once (a list page
    asks this for each of its tickets)."""

    status: list[TicketStatus]
    fields: list[str]
    actions: list[str]
    staff_only: bool


def grants(user: User, ticket: Ticket) -> Grants:
    mine = parties(user, ticket)
    return Grants(
        status=_statuses(ticket, mine),
        fields=_fields(ticket, mine),
        actions=_actions(user, mine),
        staff_only=_staff_only(mine),
    )


def check_fields(user: User, ticket: Ticket, fields: Iterable[str]) -> None:
    """403 unless `user` may change every one of `fields` (status aside) on `ticket`."""
    mine = parties(user, ticket)
    for name in fields:
        who = FIELD_PARTIES.get(name)
        if who is not None and not who & mine:
            if name == "assigned_to":
                raise Forbidden("Only admins can reassign tickets")
            raise Forbidden(f"You may not change {name}")


def check_status_move(user: User, ticket: Ticket, new_status: TicketStatus) -> None:
    """403 if `user` may not make this move, 409 if no one may from the current status."""
    mine = parties(user, ticket)
    if not mine & _STAFF_OR_CREATOR:
        raise Forbidden("You may not change the status")
    if new_status == ticket.status:
        return
    who = TRANSITIONS.get((ticket.status, new_status))
    if who is None:
        raise Conflict(f"A ticket cannot go from {ticket.status} to {new_status}")
    if not who & mine:
        raise Forbidden(f"You may not move this ticket from {ticket.status} to {new_status}")
