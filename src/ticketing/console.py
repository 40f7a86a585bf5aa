"""What every `ticketing` command shares: its consoles, how it reads the settings, and how it
runs its async work. Kept apart from cli.py so that command modules of the domains can use it
without importing the command line itself."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.console import Console

from ticketing.config import Settings, load_settings
from ticketing.errors import AppError, ConfigurationError

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")


def command_settings(*, service: bool = False) -> Settings:
    """The settings, or a readable configuration error and exit code 2.

    `service`: the command starts the API server or a worker, which refuse to run without
    SECRET_KEY (unless DEBUG); every other command runs without one.
    """
    try:
        settings = load_settings()
        if service:
            settings.require_signing_key()
        return settings
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


def run_async(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run a command's async body; an AppError becomes a red line and exit code 1."""

    async def main() -> T:
        return await coro_fn()

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(main())
    except AppError as exc:
        err_console.print(f"[red]Error:[/red] {exc.detail}")
        raise typer.Exit(1) from exc
