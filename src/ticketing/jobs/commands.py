"""`ticketing jobs list|retry`: see the job queue and retry failed jobs, no server needed.

The same services as `GET /admin/jobs` and `POST /admin/jobs/{id}/retry`.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ticketing.console import command_settings, console, err_console, run_async
from ticketing.jobs.models import JobStatus

ERROR_PREVIEW_CHARS = 160


def _error_preview(error: str | None) -> Text:
    if not error:
        return Text("-", style="dim")
    first = " ".join(error.split())
    if len(first) > ERROR_PREVIEW_CHARS:
        first = first[: ERROR_PREVIEW_CHARS - 1].rstrip() + "…"
    # Text, not markup: an error message may hold anything, brackets included.
    return Text(first, style="red")


def register(app: typer.Typer) -> None:
    jobs_app = typer.Typer(
        no_args_is_help=True, help="Background jobs: see them, retry failed ones."
    )
    app.add_typer(jobs_app, name="jobs")

    @jobs_app.command("list")
    def list_jobs(
        status: Annotated[
            JobStatus | None, typer.Option(help="queued, running, done or failed")
        ] = None,
        kind: Annotated[
            str | None, typer.Option(help="Only this kind, e.g. send_email or triage_ticket")
        ] = None,
        limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many")] = 50,
    ) -> None:
        """List jobs, newest first: kind, status, attempts, ticket and last error."""
        from ticketing.jobs import service
        from ticketing.pagination import page_of
        from ticketing.runtime import build_runtime

        settings = command_settings()

        async def main() -> tuple[Table, int, bool]:
            runtime = build_runtime(settings)
            table = Table()
            # Ids fold rather than end in "…": they are what `jobs retry ID` takes.
            table.add_column("id", overflow="fold")
            table.add_column("kind", overflow="fold")
            table.add_column("status")
            table.add_column("attempts")
            table.add_column("ticket", overflow="fold")
            table.add_column("updated (UTC)")
            table.add_column("last error", ratio=1)
            shown = 0
            try:
                async with runtime.db.transaction() as session:
                    cursor = None
                    while shown < limit:
                        size = min(100, limit - shown)
                        rows = await service.list_jobs(
                            session, status=status, kind=kind, limit=size, cursor=cursor
                        )
                        items, cursor = page_of(list(rows), size)
                        for job in items:
                            ticket_id = job.payload.get("ticket_id")
                            table.add_row(
                                Text(job.id),
                                Text(job.kind),
                                Text(job.status.value),
                                f"{job.attempts}/{job.max_attempts}",
                                Text(ticket_id if isinstance(ticket_id, str) else "-"),
                                job.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
                                _error_preview(job.last_error),
                            )
                        shown += len(items)
                        if cursor is None:
                            break
            finally:
                await runtime.close()
            return table, shown, cursor is not None

        table, shown, more = run_async(main)
        if not shown:
            what = f"{status.value} jobs" if status else "jobs"
            console.print(f"No {what}{f' of kind {escape(kind)}' if kind else ''}.")
            return
        # A console made now honours COLUMNS; wide tables are easier to grep.
        Console().print(table)
        if more:
            console.print(f"Showing the {shown} newest; use --limit to see more.")

    @jobs_app.command("retry")
    def retry(
        job_id: Annotated[
            str | None, typer.Argument(metavar="ID", help="The failed job to retry")
        ] = None,
        all_failed: Annotated[
            bool, typer.Option("--all-failed", help="Retry every failed job")
        ] = False,
    ) -> None:
        """Queue a failed job (or every failed job) again, with a fresh attempt budget."""
        from ticketing.errors import NotFound
        from ticketing.jobs import service
        from ticketing.runtime import build_runtime

        if (job_id is None) == (not all_failed):
            err_console.print("[red]Error:[/red] give one job ID, or --all-failed.")
            raise typer.Exit(2)
        settings = command_settings()

        async def main() -> int:
            runtime = build_runtime(settings)
            try:
                async with runtime.db.transaction() as session:
                    if job_id is None:
                        return await service.retry_all_failed(session)
                    try:
                        return await service.retry_job(session, job_id)
                    except NotFound as exc:
                        # run_async prints the detail as markup: the id is escaped.
                        raise NotFound(f"No job with id {escape(job_id)}") from exc
            finally:
                await runtime.close()

        queued = run_async(main)
        later = "A worker runs them shortly (`ticketing serve` or `ticketing worker`)."
        if job_id is not None:
            console.print(
                f"Job {escape(job_id)} is queued again. {later.replace('them', 'it')}",
                highlight=False,
            )
        elif queued:
            console.print(f"Queued {queued} failed job{'s' if queued != 1 else ''} again. {later}")
        else:
            console.print("No failed jobs to retry.")
