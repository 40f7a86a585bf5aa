"""Imports every table so Base.metadata is complete (for Alembic and tests)."""

from ticketing.attachments.models import Attachment
from ticketing.auth.models import LoginCode, RevokedToken
from ticketing.db import Base
from ticketing.jobs.models import Job
from ticketing.mail.models import InboundEmail, MailboxState
from ticketing.sla.models import SlaConfig
from ticketing.tickets.models import Comment, Ticket, TicketEvent, TicketMessage
from ticketing.triage.models import TriageCorrection, TriageModelVersion
from ticketing.users.models import User

__all__ = [
    "Attachment",
    "Base",
    "Comment",
    "InboundEmail",
    "Job",
    "LoginCode",
    "MailboxState",
    "RevokedToken",
    "SlaConfig",
    "Ticket",
    "TicketEvent",
    "TicketMessage",
    "TriageCorrection",
    "TriageModelVersion",
    "User",
]
