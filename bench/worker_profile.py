"""Where a worker's CPU goes per ticket: cProfile and round trips, in one process.

A fresh PostgreSQL database (`bench_worker_profile`), the pipeline benchmark's moderators,
`--tickets` tickets filed through the service (not profiled), then one worker (`flows.make_worker`,
`--concurrency` slots) runs them all (triage through the real Gemini SDK against the fake
Gemini, routing, the assignment email to the test SMTP server) under cProfile. Prints CPU per
ticket, SQL statements and transactions per ticket (by statement), and the top functions.

    .venv/bin/python -m bench.worker_profile [--tickets 300] [--ai-delay 0.05] [--top 40]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select
from tests.smtp_server import SMTP_PASSWORD, SMTP_USER, SmtpTestServer

from bench.common import (
    SECRET_KEY,
    ProcessGroup,
    drop_database,
    free_port,
    install_signal_handlers,
    log,
    migrate,
    pg_url,
    recreate_database,
    service_env,
    ticket_body,
)
from bench.pipeline import FAKE_GEMINI, MODERATORS, REQUESTER, quiet_smtp_server
from ticketing import flows
from ticketing.config import Settings
from ticketing.db import Database
from ticketing.jobs.models import Job
from ticketing.runtime import build_runtime
from ticketing.tickets import service as tickets_service
from ticketing.tickets.schemas import TicketCreate
from ticketing.users import service as users_service
from ticketing.vocabulary import Role

PG_DB = os.environ.get("BENCH_WORKER_PROFILE_DB", "bench_worker_profile")
_WORDS = re.compile(r"[A-Za-z_]+")


def _statement_key(statement: str) -> str:
    """The first words of a statement and the table it touches, e.g. `UPDATE jobs`."""
    words = _WORDS.findall(statement)
    if not words:
        return "?"
    verb = words[0].upper()
    table = ""
    for marker in ("FROM", "INTO", "UPDATE", "JOIN"):
        upper = [w.upper() for w in words]
        if marker in upper[:40]:
            i = upper.index(marker)
            if i + 1 < len(words):
                table = words[i + 1]
                break
    if verb == "SELECT" and "pg_advisory_xact_lock" in statement:
        return "SELECT pg_advisory_xact_lock"
    if verb == "SELECT" and "pg_notify" in statement:
        return "SELECT pg_notify"
    return f"{verb} {table}".strip()


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench_worker_profile_"))
    smtp = SmtpTestServer()
    smtp.start()
    await recreate_database(PG_DB)
    url = pg_url(PG_DB)
    migrate(url, workdir)
    with ProcessGroup(workdir) as procs:
        port = free_port()
        fake = procs.start(
            "fake-gemini",
            [*FAKE_GEMINI, "--port", str(port), "--delay", str(args.ai_delay)],
            env=service_env({}),
            cwd=Path.cwd(),
        )
        deadline = time.monotonic() + 30
        while "listening" not in fake.tail():
            if time.monotonic() > deadline:
                raise RuntimeError(fake.tail())
            time.sleep(0.05)
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=url,
            secret_key=SECRET_KEY,
            worker="external",
            worker_concurrency=args.concurrency,
            ticket_create_per_minute=10_000_000,
            ai_provider="gemini",
            gemini_api_key="bench-fake-key",
            gemini_base_url=f"http://127.0.0.1:{port}",
            email_backend="smtp",
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_tls="none",
            smtp_user=SMTP_USER,
            smtp_password=SMTP_PASSWORD,
            public_url="http://helpdesk.bench.example",
            log_level="WARNING",
        )
        runtime = build_runtime(settings)
        try:
            async with runtime.db.transaction() as session:
                for email, skills in MODERATORS:
                    await users_service.create_user(
                        session, email=email, role=Role.moderator, skills=skills
                    )
                requester = await users_service.create_user(session, email=REQUESTER)
            for n in range(args.tickets):
                async with runtime.db.transaction() as session:
                    await tickets_service.create_ticket(
                        session, settings, requester, TicketCreate(**ticket_body(n))
                    )
            log(f"{args.tickets} tickets filed; running the worker under cProfile")
            statements: Counter[str] = Counter()
            samples: dict[str, str] = {}
            commits = 0

            def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
                key = _statement_key(statement)
                statements[key] += 1
                samples.setdefault(key, " ".join(statement.split()))

            def count_commit(_conn: Any) -> None:
                nonlocal commits
                commits += 1

            event.listen(runtime.db.engine.sync_engine, "before_cursor_execute", count)
            event.listen(runtime.db.engine.sync_engine, "commit", count_commit)
            worker = flows.make_worker(runtime, name="profile")

            # Its own engine: the loop that watches for the end is not counted as the worker's.
            watcher = Database(url, pool_size=1)

            async def until_done() -> None:
                while True:
                    await asyncio.sleep(0.1)
                    async with watcher.transaction() as session:
                        left = await session.scalar(
                            select(func.count()).where(
                                Job.status.in_(["queued", "running"]),
                                Job.kind.in_(["triage_ticket", "send_email"]),
                            )
                        )
                    if not left:
                        worker.stop()
                        return

            profiler = cProfile.Profile(time.process_time)  # CPU time, not time waiting
            cpu0, wall0 = time.process_time(), time.monotonic()
            profiler.enable()
            await asyncio.gather(worker.run(), until_done())
            profiler.disable()
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            event.remove(runtime.db.engine.sync_engine, "before_cursor_execute", count)
            event.remove(runtime.db.engine.sync_engine, "commit", count_commit)
        finally:
            await watcher.dispose()
            await runtime.close()
            smtp.stop()
            await drop_database(PG_DB)
    assigned = sum(1 for m in smtp.handler.messages if "New ticket for you" in m.subject)
    n = args.tickets
    print(f"\n## Worker profile: {n} tickets, AI {args.ai_delay:g} s, {assigned} assigned\n")
    print(
        f"process CPU {cpu * 1000 / n:.2f} ms/ticket (with cProfile's overhead; the polling "
        f"loop that watches for the end included), wall {wall:.1f} s"
    )
    total = sum(statements.values())
    print(f"SQL statements {total / n:.2f}/ticket, commits {commits / n:.2f}/ticket\n")
    print("| statement | per ticket |\n|---|---|")
    for key, value in statements.most_common():
        print(f"| `{key}` | {value / n:.2f} |")
    if args.statements:
        print("\nOne of each:\n")
        for key, _value in statements.most_common():
            print(f"- `{key}`: `{samples[key][:300]}`")
    if args.save:
        profiler.dump_stats(args.save)  # for pstats: callers, callees
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)
    print("\n```\n" + stream.getvalue().strip() + "\n```")
    by_package: Counter[str] = Counter()
    for (filename, _line, _name), row in stats.stats.items():  # type: ignore[attr-defined]
        by_package[_package(filename)] += row[2]  # own time (tottime)
    own = sum(by_package.values())
    print("\nOwn time by package:\n\n| package | % |\n|---|---|")
    for package, seconds in by_package.most_common(12):
        print(f"| {package} | {seconds / own * 100:.1f} |")


def _package(filename: str) -> str:
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in filename:
            rest = filename.split(marker, 1)[1].lstrip("/")
            if marker == "lib/python3":
                return "stdlib/" + (rest.split("/")[1] if "/" in rest else rest)
            return rest.split("/")[0]
    return "builtins" if filename == "~" else filename


def main() -> None:
    p = argparse.ArgumentParser(description="cProfile one worker running tickets end to end.")
    p.add_argument("--tickets", type=int, default=300)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--ai-delay", type=float, default=0.05)
    p.add_argument("--statements", action="store_true", help="print one statement of each key")
    p.add_argument("--save", help="write the cProfile stats to this file")
    p.add_argument("--top", type=int, default=40)
    args = p.parse_args()
    install_signal_handlers()  # a SIGTERM stops the fake Gemini too
    quiet_smtp_server()
    sys.setrecursionlimit(10_000)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
