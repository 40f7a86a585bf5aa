"""The `ticketing` command: serve, worker, db, users, rerun-ai, eval, triage, jobs, mail.

Each domain's commands live beside its services (`tickets/commands.py`, `triage/commands.py`)
and go through those services, as the API does.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ticketing.config import Settings
from ticketing.console import command_settings, console, err_console, run_async
from ticketing.errors import ConfigurationError
from ticketing.jobs import commands as job_commands
from ticketing.logging_setup import configure_logging
from ticketing.mail import commands as mail_commands
from ticketing.tickets import commands as ticket_commands
from ticketing.triage import commands as triage_commands
from ticketing.triage.learned.commands import model_app
from ticketing.vocabulary import Role

app = typer.Typer(no_args_is_help=True, add_completion=False, help="AI helpdesk backend.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
users_app = typer.Typer(no_args_is_help=True, help="People, roles and skills.")
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(model_app, name="model")
ticket_commands.register(app)
triage_commands.register(app)
triage_commands.register_model(model_app)
job_commands.register(app)
mail_commands.register(app)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
) -> None:
    """Apply migrations, then start the API (and the embedded worker unless WORKER=external)."""
    import uvicorn

    from ticketing.app import create_app
    from ticketing.migrate import upgrade_database

    settings = command_settings(service=True)
    configure_logging(settings.log_level)
    upgrade_database(settings.database_url)
    app = create_app(settings, freeze_heap=True)
    print_welcome(settings, host, port)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        # Who the client is behind a proxy is decided by TRUSTED_PROXIES alone (uvicorn would
        # otherwise believe X-Forwarded-For from 127.0.0.1, whoever connects from there).
        proxy_headers=False,
        server_header=False,
    )


def print_welcome(settings: Settings, host: str, port: int) -> None:
    """The first thing a newcomer reads after `make run`: where to go, how to sign in."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - a comparison
    url = f"http://{shown}:{port}/"
    lines = [f"[bold]{settings.app_name}[/bold] is starting: open {url} in your browser."]
    if settings.resolved_email_backend == "console":
        lines.append(
            "Sign-in codes are emailed; with no SMTP_HOST set they are printed in this terminal "
            '(look for "sign-in code").'
        )
    if not settings.admin_email_list:
        lines.append(
            "To be an admin: start with ADMIN_EMAILS=you@example.com, or run "
            "`.venv/bin/ticketing users create you@example.com --role admin`."
        )
    lines.append(f"API documentation: {url}docs")
    for line in lines:
        console.print(line, highlight=False)


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Jobs in flight at once")] = None,
) -> None:
    """Run jobs (triage, email) and, with INBOUND_EMAIL=imap, read the support mailbox.
    Start as many as you like against PostgreSQL (one at a time reads the mailbox)."""
    from ticketing import flows
    from ticketing.runtime import build_runtime, freeze_startup_heap

    settings = command_settings(service=True)
    configure_logging(settings.log_level)

    async def main() -> None:
        runtime = build_runtime(settings)
        w = flows.make_worker(runtime, concurrency=concurrency)
        freeze_startup_heap()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, w.stop)
        try:
            async with flows.reading_mailbox(runtime):
                await w.run()
        finally:
            await runtime.close()

    run_async(main)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply migrations up to the latest schema."""
    from ticketing.migrate import upgrade_database

    settings = command_settings()
    upgrade_database(settings.database_url)
    console.print("Database is up to date.")


@users_app.command("create")
def users_create(
    email: str,
    role: Annotated[Role, typer.Option(help="admin, moderator or user")] = Role.user,
    skills: Annotated[str, typer.Option(help="Comma-separated skills, e.g. python,postgres")] = "",
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
) -> None:
    """Create an account (an invitation: the person signs in with a code sent to EMAIL)."""
    from pydantic import ValidationError

    from ticketing.runtime import build_runtime
    from ticketing.users import service as users_service
    from ticketing.users.schemas import UserCreate

    settings = command_settings()
    try:
        # The same validation as POST /admin/users.
        data = UserCreate(email=email, role=role, name=name, skills=skills.split(","))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        err_console.print(f"[red]Invalid account:[/red] {problems}")
        raise typer.Exit(2) from exc

    async def main() -> None:
        runtime = build_runtime(settings)
        try:
            async with runtime.db.transaction() as session:
                user = await users_service.create_user(
                    session, email=data.email, role=data.role, name=data.name, skills=data.skills
                )
            console.print(
                f"Created {user.role} {user.email} (id {user.id}) skills: "
                f"{', '.join(user.skills) or '-'}"
            )
        finally:
            await runtime.close()

    run_async(main)


@users_app.command("list")
def users_list() -> None:
    """List every account."""
    from ticketing.pagination import page_of
    from ticketing.runtime import build_runtime
    from ticketing.users import service as users_service

    settings = command_settings()

    async def main() -> None:
        runtime = build_runtime(settings)
        try:
            table = Table("id", "email", "name", "role", "skills", "active")
            async with runtime.db.transaction() as session:
                cursor = None
                while True:
                    rows = await users_service.list_users(
                        session,
                        limit=100,
                        cursor=cursor,
                        order="oldest",
                        role=None,
                        is_active=None,
                        q=None,
                    )
                    items, cursor = page_of(list(rows), 100)
                    for u in items:
                        table.add_row(
                            u.id,
                            u.email,
                            u.name or "",
                            u.role,
                            ", ".join(u.skills),
                            "yes" if u.is_active else "no",
                        )
                    if cursor is None:
                        break
            # A console made now honours COLUMNS; wide tables are easier to grep.
            Console().print(table)
        finally:
            await runtime.close()

    run_async(main)


def main() -> None:
    try:
        app()
    except ConfigurationError as exc:
        err_console.print(f"[red]Configuration error:[/red] {exc}")
        sys.exit(2)
