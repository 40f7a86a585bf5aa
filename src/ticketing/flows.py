"""Cross-domain flows: which job kinds exist and what each one does."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ticketing.jobs.worker import JobHandler
from ticketing.notifications.service import SEND_EMAIL
from ticketing.notifications.tasks import make_send_email_handler

if TYPE_CHECKING:
    from ticketing.runtime import Runtime


def job_handlers(runtime: Runtime) -> dict[str, JobHandler]:
    return {
        SEND_EMAIL: make_send_email_handler(runtime.sender),
    }
