"""The SLA timers at 100,000 open tickets: what it costs to keep them current.

For each engine (PostgreSQL, then SQLite), on a fresh migrated database with `--tickets` open
tickets (every priority, created over the last hour or so), in this process:

1. **Baseline: a plain pass** over the same tickets in the same batches (SELECT ... FOR UPDATE,
   due times set to created_at + a fixed interval, commit): the row traffic any recomputation
   needs, with no business clock and no timers.
2. **Recompute after `PUT /admin/sla`**, round the clock (the defaults), then with business
   hours (Europe/Berlin, Mon-Fri 09:00-17:00, holidays): the `sla_recompute` job chain run by
   the real job handler, which computes due times and status and plans one timer job per ticket.
3. **Timers firing**: `--fire` tickets are at risk, and their `sla_timer` jobs (warning event,
   flag, mail job, next timer, one transaction each) are run by the real handler; against the
   same number of no-op jobs through the same queue (the queue's own cost per job).

Figures: wall time, tickets or jobs per second, CPU seconds of this process (the database
server's CPU on PostgreSQL is not in it; the machine's busy % is), and ratios to the baseline.
Progress goes to stderr; Markdown tables and, last, one JSON line to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, update

from bench.common import (
    CpuMeter,
    drop_database,
    emit_json,
    loadavg,
    log,
    machine_info,
    markdown_table,
    pg_url,
    recreate_database,
)
from bench.seed import seed_people, ticket_rows
from ticketing import flows
from ticketing.config import Settings
from ticketing.db import set_clock
from ticketing.jobs import queue
from ticketing.jobs.models import Job, JobStatus
from ticketing.jobs.queue import JobKind
from ticketing.jobs.worker import JobContext, JobHandler, run_one
from ticketing.migrate import upgrade_database
from ticketing.runtime import Runtime, build_runtime
from ticketing.sla import service as sla_service
from ticketing.sla.schemas import SlaPolicy, default_policy
from ticketing.sla.service import SLA_RECOMPUTE
from ticketing.tickets.deadlines import SLA_TIMER, timer_key
from ticketing.tickets.models import Ticket, TicketEvent
from ticketing.users.models import User

TICKETS = cast(Table, Ticket.__table__)
DB_NAME = "bench_sla"
BATCH = 500
NOOP = JobKind("bench_noop")


def business_policy() -> SlaPolicy:
    return SlaPolicy.model_validate(
        default_policy().model_dump(mode="json")
        | {
            "business_hours": {
                "timezone": "Europe/Berlin",
                "days": [{"day": d, "start": "09:00", "end": "17:00"} for d in range(5)],
            },
            "holidays": ["2026-12-24", "2026-12-25", "2026-12-26", "2027-01-01"],
        }
    )


async def seed(runtime: Runtime, n: int, fire: int, now: datetime) -> None:
    people = await seed_people(runtime.db, n_users=200, n_moderators=20)
    rng = random.Random(7)
    rows = ticket_rows(n, people, now)
    for i, row in enumerate(rows):
        row["status"] = "open" if i % 3 else "in_progress"
        row["resolved_at"] = None
        row["number"] = i + 1
        row["assigned_to"] = row["assigned_to"] or people.moderator_ids[i % 20]
        if i < fire:
            # Urgent and 55 minutes old: past 80 % of the 60-minute first-response target.
            row["priority"] = "urgent"
            row["created_at"] = now - timedelta(minutes=55, seconds=rng.random())
        else:
            # Young enough that nothing is due yet under the default targets.
            row["priority"] = rng.choice(["medium", "low"]) if i % 2 else "high"
            row["created_at"] = now - timedelta(minutes=rng.uniform(0, 60))
        row["updated_at"] = row["created_at"]
    async with runtime.db.transaction() as session:
        for start in range(0, n, 2000):
            await session.execute(insert(TICKETS), rows[start : start + 2000])
    if runtime.db.dialect == "postgresql":
        async with runtime.db.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            await cast(Any, raw.driver_connection).execute("VACUUM ANALYZE")


async def baseline_pass(runtime: Runtime) -> None:
    """The same row traffic as a recomputation, with fixed arithmetic and no timers."""
    after = ""
    fixed = timedelta(minutes=480)
    while True:
        async with runtime.db.transaction() as session:
            tickets = (
                await session.scalars(
                    select(Ticket)
                    .where(Ticket.id > after, Ticket.priority.is_not(None))
                    .order_by(Ticket.id)
                    .limit(BATCH)
                    .with_for_update()
                )
            ).all()
            if not tickets:
                return
            for t in tickets:
                t.first_response_due_at = t.created_at + fixed
                t.resolution_due_at = t.created_at + 3 * fixed
                t.sla_next_due_at = t.first_response_due_at
            after = tickets[-1].id


async def run_kind(runtime: Runtime, handlers: Any, kind: str) -> int:
    """Run every due job of `kind` one at a time, as one worker would; returns how many."""
    ran = 0
    while True:
        claimed = await queue.claim_jobs(runtime.db, "bench-sla", 1, 600, [kind])
        if not claimed:
            return ran
        await run_one(runtime.db, handlers, claimed[0], 600)
        ran += 1


async def put_policy(runtime: Runtime, policy: SlaPolicy) -> None:
    async with runtime.db.transaction() as session:
        admin = (await session.scalars(select(User).where(User.role == "admin"))).first()
        assert admin is not None
        await sla_service.put_policy(session, admin, policy)


async def count_jobs(runtime: Runtime, kind: str, status: JobStatus) -> int:
    async with runtime.db.transaction() as session:
        stmt = select(func.count()).where(Job.kind == kind, Job.status == status)
        return int(await session.scalar(stmt) or 0)


def measure(label: str) -> Measure:
    return Measure(label)


class Measure:
    def __init__(self, label: str) -> None:
        self.label = label
        self.cpu = CpuMeter()

    def __enter__(self) -> Measure:
        log(f"{self.label} ...")
        self.cpu.__enter__()
        self.t0 = time.monotonic()
        self.c0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self.t0
        self.cpu_seconds = time.process_time() - self.c0
        self.cpu.__exit__()
        log(f"{self.label}: {self.seconds:.2f} s")

    def figures(self, items: int) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 3),
            "per_second": round(items / self.seconds, 1) if self.seconds else None,
            "ms_per_item": round(self.seconds / items * 1000, 3) if items else None,
            "cpu_seconds": round(self.cpu_seconds, 3),
            "cpu_ms_per_item": round(self.cpu_seconds / items * 1000, 3) if items else None,
            "machine_busy_pct": round(self.cpu.machine_pct or 0.0, 1),
        }


async def run_engine(engine: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    if engine == "postgres":
        await recreate_database(DB_NAME)
        url = pg_url(DB_NAME)
    else:
        url = f"sqlite+aiosqlite:///{workdir / 'sla.db'}"
    await asyncio.to_thread(upgrade_database, url)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        secret_key="bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        email_backend="console",
        worker="external",
    )
    runtime = build_runtime(settings)
    handlers: dict[str, tuple[JobKind, JobHandler]] = {
        k.name: (k, h) for k, h in flows.job_handlers(runtime).items()
    }

    async def noop(ctx: JobContext) -> None:
        async with runtime.db.transaction() as session:
            await ctx.finish(session)

    handlers[NOOP.name] = (NOOP, noop)
    n, fire = args.tickets, args.fire
    result: dict[str, Any] = {"tickets": n}
    try:
        # Time stands still for the run (the process clock, as in the tests): however long the
        # passes take, the `fire` tickets are at risk, not yet breached, when their timers run.
        frozen = datetime.now(UTC)
        set_clock(lambda: frozen)
        log(f"[{engine}] seeding {n:,} open tickets")
        await seed(runtime, n, fire, frozen)

        with measure(f"[{engine}] baseline pass") as m:
            await baseline_pass(runtime)
        result["baseline"] = m.figures(n)

        for name, policy in (
            ("recompute_24x7", default_policy()),
            ("recompute_business_hours", business_policy()),
        ):
            await put_policy(runtime, policy)
            with measure(f"[{engine}] {name}") as m:
                jobs = await run_kind(runtime, handlers, SLA_RECOMPUTE.name)
            result[name] = m.figures(n) | {"jobs": jobs}
            result[name]["vs_baseline"] = round(m.seconds / result["baseline"]["seconds"], 2)
        result["timers_planned"] = await count_jobs(runtime, SLA_TIMER.name, JobStatus.queued)

        # Back to round the clock: the `fire` urgent tickets are at risk now, their timers due.
        await put_policy(runtime, default_policy())
        await run_kind(runtime, handlers, SLA_RECOMPUTE.name)
        async with runtime.db.transaction() as session:
            due = await session.scalar(
                select(func.count()).where(
                    Job.kind == SLA_TIMER.name,
                    Job.status == JobStatus.queued,
                    Job.run_after <= frozen,
                )
            )
        result["timers_due"] = int(due or 0)
        async with runtime.db.transaction() as session:
            for i in range(fire):
                queue.enqueue(session, NOOP, {"i": i})
        with measure(f"[{engine}] {fire} no-op jobs") as m:
            ran = await run_kind(runtime, handlers, NOOP.name)
        result["noop_jobs"] = m.figures(ran) | {"jobs": ran}
        with measure(f"[{engine}] {result['timers_due']} warning timers") as m:
            ran = await run_kind(runtime, handlers, SLA_TIMER.name)
        result["warning_timers"] = m.figures(ran) | {"jobs": ran}
        result["warning_timers"]["vs_noop"] = round(
            result["warning_timers"]["ms_per_item"] / result["noop_jobs"]["ms_per_item"], 2
        )
        result["mails_queued"] = await count_jobs(runtime, "send_email", JobStatus.queued)
        async with runtime.db.transaction() as session:
            kinds = (
                await session.execute(
                    select(TicketEvent.kind, func.count()).group_by(TicketEvent.kind)
                )
            ).all()
        result["events"] = {str(k): int(c) for k, c in kinds}

        # Timers that fire and find nothing (the due time moved): they only plan the next.
        sample = [f"{i}" for i in range(fire)]
        async with runtime.db.transaction() as session:
            ids = (
                await session.scalars(
                    select(Ticket.id).where(Ticket.priority != "urgent").limit(len(sample))
                )
            ).all()
            await session.execute(
                update(Job)
                .where(Job.key.in_([timer_key(i) for i in ids]), Job.status == JobStatus.queued)
                .values(run_after=frozen)
            )
        with measure(f"[{engine}] {len(ids)} idle timers") as m:
            ran = await run_kind(runtime, handlers, SLA_TIMER.name)
        result["idle_timers"] = m.figures(ran) | {"jobs": ran}
    finally:
        set_clock(None)
        await runtime.close()
        if engine == "postgres" and not args.keep_db:
            await drop_database(DB_NAME)
    return result


def report(results: dict[str, dict[str, Any]]) -> None:
    rows = []
    for engine, r in results.items():
        for name in ("baseline", "recompute_24x7", "recompute_business_hours"):
            f = r[name]
            rows.append(
                [
                    engine,
                    name,
                    r["tickets"],
                    f["seconds"],
                    f["per_second"],
                    f["cpu_seconds"],
                    f["cpu_ms_per_item"],
                    f.get("vs_baseline", 1.0),
                    f["machine_busy_pct"],
                ]
            )
    print("### Keeping 100,000 tickets' SLA current (a policy change recomputes every one)\n")
    print(
        markdown_table(
            [
                "engine",
                "pass",
                "tickets",
                "seconds",
                "tickets/s",
                "CPU s (this process)",
                "CPU ms/ticket",
                "x baseline",
                "machine busy %",
            ],
            rows,
        )
    )
    rows = []
    for engine, r in results.items():
        for name in ("noop_jobs", "warning_timers", "idle_timers"):
            f = r[name]
            rows.append(
                [
                    engine,
                    name,
                    f["jobs"],
                    f["ms_per_item"],
                    f["cpu_ms_per_item"],
                    f.get("vs_noop", 1.0 if name == "noop_jobs" else None),
                    f["machine_busy_pct"],
                ]
            )
    print("\n### Timer jobs firing (one worker, one job at a time)\n")
    print(
        markdown_table(
            ["engine", "jobs", "count", "ms/job", "CPU ms/job", "x no-op job", "machine busy %"],
            rows,
        )
    )
    print()
    for engine, r in results.items():
        print(
            f"- {engine}: {r['timers_planned']:,} timer jobs queued for {r['tickets']:,} tickets "
            f"(one each); {r['timers_due']:,} due at once; {r['mails_queued']:,} mails queued; "
            f"timeline events {r['events']}."
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="SLA timers at 100,000 open tickets.")
    p.add_argument("--tickets", type=int, default=100_000)
    p.add_argument("--fire", type=int, default=2000, help="tickets whose warning timers fire")
    p.add_argument("--engines", default="postgres,sqlite")
    p.add_argument("--keep-db", action="store_true", help="keep the bench_sla database")
    p.add_argument("--quick", action="store_true", help="smoke run: 5,000 tickets, 200 firing")
    args = p.parse_args(argv)
    if args.quick:
        args.tickets, args.fire = 5000, 200
    return args


async def main_async(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-sla-"))
    results: dict[str, dict[str, Any]] = {}
    load_before = loadavg()
    try:
        for engine in args.engines.split(","):
            results[engine.strip()] = await run_engine(engine.strip(), args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(results)
    emit_json(
        {
            "machine": machine_info(),
            "loadavg_before": load_before,
            "loadavg_after": loadavg(),
            "engines": results,
        }
    )


def main(argv: list[str] | None = None) -> None:
    asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    main()
