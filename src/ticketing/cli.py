"""The `ticketing` command: serve, worker, db, users, rerun-ai, eval, triage."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from ticketing.config import Settings, load_settings
from ticketing.errors import AppError, ConfigurationError
from ticketing.logging_setup import configure_logging
from ticketing.users.models import Role

app = typer.Typer(no_args_is_help=True, add_completion=False, help="AI helpdesk backend.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
users_app = typer.Typer(no_args_is_help=True, help="People, roles and skills.")
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigurationError as exc:
        err_console.print(f"[red]Configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (it comes with uvicorn[standard]), as the API server uses."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return None
    return uvloop.new_event_loop


def _run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await coro_fn()

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(main())
    except AppError as exc:
        err_console.print(f"[red]Error:[/red] {exc.detail}")
        raise typer.Exit(1) from exc


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
) -> None:
    """Apply migrations, then start the API (and the embedded worker unless WORKER=external)."""
    import uvicorn

    from ticketing.app import create_app
    from ticketing.migrate import upgrade_database

    settings = _settings()
    configure_logging(settings.log_level)
    upgrade_database(settings.database_url)
    uvicorn.run(
        create_app(settings, freeze_heap=True),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
    )


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Jobs in flight at once")] = None,
) -> None:
    """Run jobs only (triage, email). Start as many as you like against PostgreSQL."""
    from ticketing.runtime import build_runtime, freeze_startup_heap

    settings = _settings()
    configure_logging(settings.log_level)

    async def main() -> None:
        runtime = build_runtime(settings)
        w = runtime.make_worker(concurrency=concurrency)
        freeze_startup_heap()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, w.stop)
        try:
            await w.run()
        finally:
            await runtime.close()

    _run(main)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply migrations up to the latest schema."""
    from ticketing.migrate import upgrade_database

    settings = _settings()
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
    from pydantic import TypeAdapter, ValidationError

    from ticketing.runtime import build_runtime
    from ticketing.users import service as users_service
    from ticketing.users.schemas import Email

    settings = _settings()
    try:
        address = TypeAdapter(Email).validate_python(email)
    except ValidationError as exc:
        err_console.print(f"[red]Invalid email address:[/red] {email}")
        raise typer.Exit(2) from exc

    async def main() -> None:
        runtime = build_runtime(settings)
        try:
            async with runtime.db.transaction() as session:
                user = await users_service.create_user(
                    session, email=address, role=role, name=name, skills=skills.split(",")
                )
            console.print(
                f"Created {user.role} {user.email} (id {user.id}) skills: "
                f"{', '.join(user.skills) or '-'}"
            )
        finally:
            await runtime.close()

    _run(main)


@users_app.command("list")
def users_list() -> None:
    """List every account."""
    from ticketing.pagination import page_of
    from ticketing.runtime import build_runtime
    from ticketing.users import repository as users_repo

    settings = _settings()

    async def main() -> None:
        runtime = build_runtime(settings)
        try:
            table = Table("id", "email", "name", "role", "skills", "active")
            async with runtime.db.transaction() as session:
                cursor = None
                while True:
                    rows = await users_repo.list_page(
                        session, limit=100, cursor=cursor, order="oldest"
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

    _run(main)


def _register_optional_commands() -> None:
    from ticketing.tickets import commands as ticket_commands

    ticket_commands.register(app)
    try:
        from ticketing.triage import commands as triage_commands
    except ImportError:  # pragma: no cover - during development only
        return
    triage_commands.register(app)


_register_optional_commands()


def main() -> None:
    try:
        app()
    except ConfigurationError as exc:
        err_console.print(f"[red]Configuration error:[/red] {exc}")
        sys.exit(2)
