"""Imports every table so Base.metadata is complete (for Alembic and tests)."""

from ticketing.auth.models import LoginCode, RevokedToken
from ticketing.db import Base
from ticketing.jobs.models import Job
from ticketing.tickets.models import Comment, Ticket, TicketEvent
from ticketing.users.models import User

__all__ = ["Base", "Comment", "Job", "LoginCode", "RevokedToken", "Ticket", "TicketEvent", "User"]
