"""Routing benchmark: how long one routing decision takes with 50 staff and 10,000 open tickets.

For PostgreSQL and then SQLite (`--engines postgres,sqlite`), on a fresh database migrated by
`ticketing db upgrade`, in this process (no HTTP: the decision is what is measured):

1. **People**: 50 staff (45 moderators with skills, 5 admins) and 1,000 users, inserted
   directly. Their availability varies as in a real team: 5 are away, 10 work office hours in
   time zones spread round the world (so some are off shift at any moment), 10 have a cap.
2. **Tickets**: `--tickets` (10,000) open, in-progress and waiting tickets assigned across the
   staff (COPY on PostgreSQL, executemany on SQLite; then ANALYZE), plus `--waiting` (200)
   unassigned tickets waiting for someone ("waiting: ...").
3. **Baseline**: one transaction that SELECTs the active staff (the candidates' rows, nothing
   else): the least any routing decision must do.
4. **Decision**: one transaction that takes the routing lock, reads the staff and their loads
   (open + in progress + waiting tickets per person), works out who is available and under
   their cap, and picks the assignee for a ticket (`routing.choose_assignee`); rolled back.
5. **Offer**: `flows.offer_waiting_tickets` hands out the waiting tickets (each assignment in
   the normal path: row, timeline, email job), in batches of 100: ms per ticket assigned.

Each of 3 and 4 runs `--rounds` (1,000) times after `--warmup` (50) rounds, one at a time;
printed: p50/p99/mean in ms, and the decision's p50 and p99 as a multiple of the baseline's.

    .venv/bin/python -m bench.routing [--engines postgres,sqlite] [--tickets 10000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, insert, select, text

from bench.common import (
    SECRET_KEY,
    CpuMeter,
    drop_database,
    emit_json,
    install_signal_handlers,
    loadavg,
    log,
    machine_info,
    markdown_table,
    migrate,
    percentile,
    pg_url,
    postgres_version,
    recreate_database,
)
from bench.seed import MODERATOR_SKILLS
from ticketing import flows
from ticketing.config import Settings
from ticketing.db import Database, new_id
from ticketing.routing import service as routing
from ticketing.runtime import build_runtime
from ticketing.tickets.models import Ticket
from ticketing.users.models import User
from ticketing.vocabulary import STAFF_ROLES

PG_DB = "bench_routing"
TICKETS = cast(Table, Ticket.__table__)
USERS = cast(Table, User.__table__)
ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney", "America/Denver"]
OFFICE = [{"day": d, "start": "09:00", "end": "17:00"} for d in range(5)]


def staff_rows(now: datetime, n_moderators: int, n_admins: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n_moderators + n_admins):
        admin = i >= n_moderators
        rows.append(
            {
                "id": new_id(),
                "email": f"{'admin' if admin else 'mod'}{i}@bench.example",
                "name": f"Staff {i}",
                "role": "admin" if admin else "moderator",
                "skills": [] if admin else MODERATOR_SKILLS[i % len(MODERATOR_SKILLS)],
                "is_active": True,
                "token_version": 0,
                "created_at": now,
                "updated_at": now,
                "timezone": ZONES[i % len(ZONES)] if 10 <= i < 20 else "UTC",
                "working_hours": OFFICE if 10 <= i < 20 else [],
                "away_until": now + timedelta(days=3) if i < 5 else None,
                "max_open_tickets": 150 if 20 <= i < 30 else None,
                "last_assigned_at": now - timedelta(minutes=i),
            }
        )
    return rows


def user_rows(now: datetime, n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": new_id(),
            "email": f"user{i}@bench.example",
            "name": f"User {i}",
            "role": "user",
            "skills": [],
            "is_active": True,
            "token_version": 0,
            "created_at": now,
            "updated_at": now,
            "timezone": "UTC",
            "working_hours": [],
        }
        for i in range(n)
    ]


def ticket_rows(
    n: int, n_waiting: int, staff: list[str], users: list[str], now: datetime
) -> list[dict[str, Any]]:
    rng = random.Random(7)
    rows = []
    for i in range(n + n_waiting):
        waiting = i >= n
        created = now - timedelta(minutes=i + 1)
        rows.append(
            {
                "id": new_id(),
                "number": i + 1,
                "source": "web",
                "title": f"Bench ticket {i}",
                "description": "Routing benchmark ticket.",
                "status": "open" if waiting else rng.choice(["open", "in_progress", "waiting"]),
                "priority": rng.choice(["low", "medium", "high", "urgent"]),
                "ticket_type": "bug",
                "required_skills": rng.choice(MODERATOR_SKILLS),
                "analysis_status": "ai",
                "created_by": rng.choice(users),
                "assigned_to": None if waiting else rng.choice(staff),
                "assigned_at": None if waiting else created,
                "assignment_reason": "waiting: nobody available (bench)" if waiting else "bench",
                "created_at": created,
                "updated_at": created,
                "needs_review": False,
                "sla_paused_seconds": 0,
                "sla_response_warned": False,
                "sla_response_breached": False,
                "sla_resolution_warned": False,
                "sla_resolution_breached": False,
            }
        )
    return rows


async def seed(db: Database, n_tickets: int, n_waiting: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    staff = staff_rows(now, 45, 5)
    users = user_rows(now, 1000)
    async with db.transaction() as session:
        await session.execute(insert(USERS), staff)
        for start in range(0, len(users), 1000):
            await session.execute(insert(USERS), users[start : start + 1000])
    tickets = ticket_rows(
        n_tickets, n_waiting, [s["id"] for s in staff], [u["id"] for u in users], now
    )
    started = time.monotonic()
    if db.dialect == "postgresql":
        columns = list(tickets[0])
        records = [
            tuple(json.dumps(r[c]) if c == "required_skills" else r[c] for c in columns)
            for r in tickets
        ]
        async with db.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            apg: Any = raw.driver_connection
            await apg.copy_records_to_table("tickets", records=records, columns=columns)
            await apg.execute("SELECT setval('ticket_number_seq', $1)", len(tickets) + 1)
            await apg.execute("VACUUM ANALYZE tickets")
            await apg.execute("ANALYZE users")
    else:
        async with db.transaction() as session:
            for start in range(0, len(tickets), 5000):
                await session.execute(insert(TICKETS), tickets[start : start + 5000])
            await session.execute(text("ANALYZE"))
    log(f"seeded {len(tickets):,} tickets in {time.monotonic() - started:.1f} s")
    return {"staff": len(staff), "users": len(users), "requesters": [u["id"] for u in users]}


async def time_rounds(label: str, rounds: int, warmup: int, op: Any) -> dict[str, Any]:
    for _ in range(warmup):
        await op()
    samples = []
    started = time.monotonic()
    cpu0 = time.process_time()
    with CpuMeter() as machine:
        for _ in range(rounds):
            t0 = time.perf_counter()
            await op()
            samples.append((time.perf_counter() - t0) * 1000)
    cpu = time.process_time() - cpu0
    samples.sort()
    figures = {
        "p50_ms": percentile(samples, 50),
        "p99_ms": percentile(samples, 99),
        "mean_ms": statistics.fmean(samples),
        "seconds": time.monotonic() - started,
        # This process's CPU (Python, SQLAlchemy, the driver; SQLite's work is in here too,
        # PostgreSQL's is in its own processes) and how busy the whole machine was.
        "cpu_ms_per_op": cpu * 1000 / rounds,
        "machine_busy_pct": machine.machine_pct,
    }
    log(f"{label}: p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms")
    return figures


async def run_engine(engine: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    if engine == "postgres":
        await recreate_database(PG_DB)
        url = pg_url(PG_DB)
    else:
        url = f"sqlite+aiosqlite:///{workdir / 'routing.db'}"
    migrate(url, workdir)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        secret_key=SECRET_KEY,
        email_backend="console",
        ai_provider="local",
    )
    runtime = build_runtime(settings)
    db = runtime.db
    try:
        seeded = await seed(db, args.tickets, args.waiting)
        rng = random.Random(11)
        requesters = seeded["requesters"]

        async def baseline() -> None:
            async with db.transaction() as session:
                stmt = select(User).where(User.role.in_(STAFF_ROLES), User.is_active.is_(True))
                (await session.scalars(stmt)).all()

        async def decision() -> None:
            async with db.sessionmaker() as session, session.begin():
                # Not db.transaction(): the decision is rolled back, nothing is assigned.
                await routing.choose_assignee(
                    session, rng.choice(MODERATOR_SKILLS), requester_id=rng.choice(requesters)
                )
                await session.rollback()

        base = await time_rounds(f"{engine} baseline", args.rounds, args.warmup, baseline)
        dec = await time_rounds(f"{engine} decision", args.rounds, args.warmup, decision)

        started = time.perf_counter()
        assigned = await flows.offer_waiting_tickets(runtime)
        offer_ms = (time.perf_counter() - started) * 1000
        log(f"{engine} offer: {assigned} assigned in {offer_ms:.0f} ms")
        return {
            "tickets": args.tickets,
            "waiting": args.waiting,
            "staff": seeded["staff"],
            "baseline": base,
            "decision": dec,
            "decision_vs_baseline_p50": dec["p50_ms"] / base["p50_ms"],
            "decision_vs_baseline_p99": dec["p99_ms"] / base["p99_ms"],
            "offer": {
                "assigned": assigned,
                "ms": offer_ms,
                "ms_per_ticket": offer_ms / assigned if assigned else None,
            },
        }
    finally:
        await runtime.close()
        if engine == "postgres" and not args.keep_db:
            await drop_database(PG_DB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default="postgres,sqlite")
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--waiting", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--keep-db", action="store_true", help="keep bench_routing for EXPLAIN")
    parser.add_argument("--quick", action="store_true", help="200 rounds")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.warmup = 200, 20
    install_signal_handlers()
    figures: dict[str, Any] = {"machine": machine_info(), "load_before": loadavg(), "engines": {}}
    if "postgres" in args.engines:
        figures["postgres_version"] = asyncio.run(postgres_version())
    with tempfile.TemporaryDirectory(prefix="bench-routing-") as tmp:
        for engine in args.engines.split(","):
            log(f"--- {engine} ---")
            figures["engines"][engine] = asyncio.run(run_engine(engine, args, Path(tmp)))
    figures["load_after"] = loadavg()
    rows = []
    for engine, f in figures["engines"].items():
        for name in ("baseline", "decision"):
            r = f[name]
            rows.append(
                [
                    engine,
                    name,
                    r["p50_ms"],
                    r["p99_ms"],
                    r["mean_ms"],
                    r["cpu_ms_per_op"],
                    r["machine_busy_pct"],
                ]
            )
    print(f"\n## Routing: 50 staff, {args.tickets:,} open tickets\n")
    headers = ["engine", "operation", "p50 ms", "p99 ms", "mean ms", "CPU ms/op", "machine busy %"]
    print(markdown_table(headers, rows))
    ratios = [
        [
            engine,
            f["decision_vs_baseline_p50"],
            f["decision_vs_baseline_p99"],
            f["offer"]["assigned"],
            f["offer"]["ms_per_ticket"],
        ]
        for engine, f in figures["engines"].items()
    ]
    print()
    print(
        markdown_table(
            ["engine", "decision/baseline p50", "p99", "offer: assigned", "ms per ticket"], ratios
        )
    )
    print(f"\nload average before/after: {figures['load_before']} / {figures['load_after']}\n")
    emit_json(figures)


if __name__ == "__main__":
    sys.exit(main())
