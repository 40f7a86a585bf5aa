"""Filing-to-assignment latency: POST /tickets/create until the assignee's email arrives.

PostgreSQL, `ticketing serve` (WORKER=external) and one external `ticketing worker`, the fake
Gemini answering after 0.5 s, the test SMTP server. Tickets are filed at a paced rate (5/s,
open loop: each is timed from its scheduled start) for `--duration` seconds, once with
JOB_NOTIFY=true (workers woken by LISTEN/NOTIFY) and once with JOB_NOTIFY=false (the baseline:
the worker sees a new job at its next poll, WORKER_POLL_SECONDS=1). Latency = the assignment
email's arrival at the SMTP server - the POST's start - the AI's delay.

Then what NOTIFY costs per create, in-process and without HTTP: transactions that each enqueue
one job, with and without the NOTIFY, alternating: wall time, this process's CPU and its
PostgreSQL backend's CPU per transaction.

Prints Markdown tables, then one JSON line with every figure.

    .venv/bin/python -m bench.latency [--rate 5] [--duration 60] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from bench.common import (
    CpuMeter,
    PgBackendCpu,
    ProcessGroup,
    drop_database,
    emit_json,
    install_signal_handlers,
    loadavg,
    log,
    markdown_table,
    migrate,
    percentile,
    pg_url,
    postgres_version,
    recreate_database,
    ticket_body,
)
from bench.common import machine_info as get_machine_info
from bench.pipeline import ASSIGNED_SUBJECT, Bench, TimedHandler, quiet_smtp_server
from bench.pipeline import PG_DB as PIPELINE_DB
from ticketing.db import Database
from ticketing.jobs import queue
from ticketing.notifications.service import SEND_EMAIL

PG_DB = PIPELINE_DB  # the pipeline benchmark's stack (Bench) creates and drops it
COST_DB = "bench_latency"
TARGET_P50_MS = 100.0
TARGET_P99_MS = 300.0
TICKET_ID_RE = re.compile(
    r"/tickets/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)


class ArrivalHandler(TimedHandler):
    """Also notes which ticket each assignment email is about (its link names the ticket)."""

    def arrivals_by_ticket(self) -> dict[str, float]:
        found: dict[str, float] = {}
        with self.lock:
            for (arrived, subject), message in zip(self.arrivals, self.messages, strict=False):
                if ASSIGNED_SUBJECT not in subject:
                    continue
                match = TICKET_ID_RE.search(message.text)
                if match:
                    found.setdefault(match.group(1), arrived)
        return found


class LatencyBench(Bench):
    def __init__(self, args: argparse.Namespace, workdir: Path, procs: ProcessGroup) -> None:
        super().__init__(args, workdir, procs)
        self.handler = ArrivalHandler()
        self.smtp.handler = self.handler
        self.notify = True

    def settings(self, url: str, fake_url: str) -> dict[str, object]:
        return super().settings(url, fake_url) | {
            "job_notify": self.notify,
            "worker_poll_seconds": self.args.poll_seconds,
        }

    async def run(self, notify: bool) -> dict[str, Any]:
        args = self.args
        self.notify = notify
        label = "NOTIFY" if notify else f"polling only (every {args.poll_seconds:g} s)"
        log(f"[latency] {label}: {args.rate:g} tickets/s for {args.duration:g} s")
        stack = await self.start_stack(1, args.ai_delay)
        try:
            # Let the worker finish starting (its first claims) before the clock runs.
            await asyncio.sleep(2)
            total = int(args.rate * args.duration)
            posted: dict[str, float] = {}
            errors = 0
            load_before = loadavg()
            async with httpx.AsyncClient(
                base_url=stack.api_url,
                headers={"Authorization": f"Bearer {stack.token}"},
                timeout=30,
                limits=httpx.Limits(max_connections=32),
            ) as client:

                async def file(n: int, start: float) -> None:
                    nonlocal errors
                    delay = start - time.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    try:
                        response = await client.post("/tickets/create", json=ticket_body(n))
                        response.raise_for_status()
                        posted[str(response.json()["id"])] = start
                    except (httpx.HTTPError, KeyError, ValueError):
                        errors += 1

                with (
                    PgBackendCpu(PG_DB) as pg_cpu,
                    CpuMeter(stack.workers[0].pid) as worker_cpu,
                    CpuMeter(stack.api.pid) as api_cpu,
                ):
                    t0 = time.time() + 0.2
                    await asyncio.gather(*(file(n, t0 + n / args.rate) for n in range(total)))
                    deadline = time.monotonic() + args.timeout
                    while len(self.handler.arrivals_by_ticket().keys() & posted.keys()) < len(
                        posted
                    ):
                        if time.monotonic() > deadline:
                            raise TimeoutError("not every assignment email arrived")
                        await asyncio.sleep(0.05)
            arrivals = self.handler.arrivals_by_ticket()
            latencies = sorted(
                (arrivals[tid] - start - args.ai_delay) * 1000 for tid, start in posted.items()
            )
            tickets = len(posted)
            result = {
                "notify": notify,
                "poll_seconds": args.poll_seconds,
                "tickets": tickets,
                "errors": errors,
                "p50_ms": percentile(latencies, 50),
                "p90_ms": percentile(latencies, 90),
                "p99_ms": percentile(latencies, 99),
                "max_ms": latencies[-1],
                "api_cpu_ms_per_ticket": (api_cpu.cpu_seconds or 0) * 1000 / tickets,
                "worker_cpu_ms_per_ticket": (worker_cpu.cpu_seconds or 0) * 1000 / tickets,
                "pg_cpu_ms_per_ticket": pg_cpu.cpu_seconds * 1000 / tickets,
                "machine_busy_pct": worker_cpu.machine_pct or 0.0,
                "loadavg_before": load_before,
            }
            log(
                f"  p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms, "
                f"max {result['max_ms']:.0f} ms ({tickets} tickets, {errors} errors)"
            )
            return result
        finally:
            await self.stop_stack(stack)


def _backend_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


async def notify_cost(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    """Transactions that each enqueue one job, with and without the NOTIFY, alternating."""
    log(f"[cost] {args.cost_rounds} x {args.cost_transactions} enqueuing transactions each way")
    await recreate_database(COST_DB)
    url = pg_url(COST_DB)
    migrate(url, workdir)
    hz = os.sysconf("SC_CLK_TCK")
    dbs = {
        True: Database(url, pool_size=1),
        False: Database(url, pool_size=1, session_info={queue.NOTIFY_OFF: True}),
    }
    totals = {mode: {"wall": 0.0, "cpu": 0.0, "pg": 0.0, "n": 0} for mode in dbs}
    try:
        pids: dict[bool, int] = {}
        for mode, db in dbs.items():
            async with db.transaction() as session:
                pids[mode] = int(await session.scalar(text("SELECT pg_backend_pid()")))
        for _ in range(args.cost_rounds):
            for mode in (False, True):
                db = dbs[mode]
                pg0, cpu0, wall0 = (
                    _backend_ticks(pids[mode]),
                    time.process_time(),
                    time.perf_counter(),
                )
                for n in range(args.cost_transactions):
                    async with db.transaction() as session:
                        queue.enqueue(session, SEND_EMAIL, {"n": n}, delay_seconds=3600)
                t = totals[mode]
                t["wall"] += time.perf_counter() - wall0
                t["cpu"] += time.process_time() - cpu0
                t["pg"] += (_backend_ticks(pids[mode]) - pg0) / hz
                t["n"] += args.cost_transactions
    finally:
        for db in dbs.values():
            await db.dispose()
        await drop_database(COST_DB)
    rows = []
    for mode in (False, True):
        t = totals[mode]
        rows.append(
            {
                "notify": mode,
                "transactions": t["n"],
                "wall_ms": t["wall"] * 1000 / t["n"],
                "client_cpu_ms": t["cpu"] * 1000 / t["n"],
                "backend_cpu_ms": t["pg"] * 1000 / t["n"],
            }
        )
    return rows


def report(
    runs: list[dict[str, Any]], cost: list[dict[str, Any]], args: argparse.Namespace
) -> dict[str, Any]:
    print(
        f"\n## Filing to assignment email: {args.rate:g} tickets/s paced for {args.duration:g} s, "
        f"fake Gemini {args.ai_delay:g} s (subtracted), 1 external worker, PostgreSQL\n"
    )
    print(
        markdown_table(
            [
                "wake-up",
                "tickets",
                "errors",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "max ms",
                "API CPU ms/ticket",
                "worker CPU ms/ticket",
                "PostgreSQL CPU ms/ticket",
                "machine busy %",
                "load average before",
            ],
            [
                [
                    "NOTIFY" if r["notify"] else f"poll every {r['poll_seconds']:g} s",
                    r["tickets"],
                    r["errors"],
                    r["p50_ms"],
                    r["p90_ms"],
                    r["p99_ms"],
                    r["max_ms"],
                    r["api_cpu_ms_per_ticket"],
                    r["worker_cpu_ms_per_ticket"],
                    r["pg_cpu_ms_per_ticket"],
                    r["machine_busy_pct"],
                    " ".join(f"{v:.2f}" for v in r["loadavg_before"]),
                ]
                for r in runs
            ],
        )
    )
    targets: dict[str, dict[str, Any]] = {}
    on = next((r for r in runs if r["notify"]), None)
    if on:
        targets["assignment_p50_ms"] = {
            "measured": round(on["p50_ms"], 1),
            "limit": f"<= {TARGET_P50_MS:g}",
            "pass": on["p50_ms"] <= TARGET_P50_MS,
        }
        targets["assignment_p99_ms"] = {
            "measured": round(on["p99_ms"], 1),
            "limit": f"<= {TARGET_P99_MS:g}",
            "pass": on["p99_ms"] <= TARGET_P99_MS,
        }
    if cost:
        print("\n## What the NOTIFY costs per enqueuing transaction (in-process, no HTTP)\n")
        print(
            markdown_table(
                ["NOTIFY", "transactions", "wall ms", "client CPU ms", "backend CPU ms"],
                [
                    [
                        "yes" if c["notify"] else "no",
                        c["transactions"],
                        round(c["wall_ms"], 3),
                        round(c["client_cpu_ms"], 3),
                        round(c["backend_cpu_ms"], 3),
                    ]
                    for c in cost
                ],
            )
        )
        off_c, on_c = cost
        print(
            f"\nNOTIFY adds {on_c['wall_ms'] - off_c['wall_ms']:+.3f} ms wall, "
            f"{on_c['client_cpu_ms'] - off_c['client_cpu_ms']:+.3f} ms client CPU and "
            f"{on_c['backend_cpu_ms'] - off_c['backend_cpu_ms']:+.3f} ms PostgreSQL CPU "
            "per transaction that enqueues."
        )
    print("\n## Targets\n")
    print(
        markdown_table(
            ["target", "measured", "limit", "result"],
            [[k, t["measured"], t["limit"], bool(t["pass"])] for k, t in targets.items()],
        )
    )
    print()
    return targets


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Filing-to-assignment latency, NOTIFY against polling.")
    p.add_argument("--rate", type=float, default=5.0, help="tickets filed per second")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of filing per mode")
    p.add_argument("--ai-delay", type=float, default=0.5, help="seconds the fake AI takes")
    p.add_argument("--poll-seconds", type=float, default=1.0, help="WORKER_POLL_SECONDS")
    p.add_argument("--concurrency", type=int, default=16, help="WORKER_CONCURRENCY")
    p.add_argument("--modes", default="notify,poll", help="notify, poll or both (comma list)")
    p.add_argument("--cost-transactions", type=int, default=1000)
    p.add_argument("--cost-rounds", type=int, default=3)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for emails")
    p.add_argument("--keep-db", action="store_true")
    p.add_argument("--quick", action="store_true", help="smoke run: 15 s per mode")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.cost_transactions, args.cost_rounds = 15.0, 300, 2
    return args


async def amain(args: argparse.Namespace) -> None:
    install_signal_handlers()
    quiet_smtp_server()
    started = time.monotonic()
    machine = get_machine_info()
    load_before = loadavg()
    pg_version = await postgres_version()
    workdir = Path(tempfile.mkdtemp(prefix="bench_latency_"))
    runs: list[dict[str, Any]] = []
    try:
        with ProcessGroup(workdir) as procs:
            bench = LatencyBench(args, workdir, procs)
            bench.smtp.start()
            try:
                for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
                    runs.append(await bench.run(notify=mode == "notify"))
            finally:
                bench.smtp.stop()
        cost = await notify_cost(args, workdir) if args.cost_transactions else []
    except BaseException:
        log(f"logs kept in {workdir}")
        raise
    shutil.rmtree(workdir, ignore_errors=True)
    targets = report(runs, cost, args)
    total = time.monotonic() - started
    print(
        f"Took {total:.0f} s. Machine: {machine['nproc']} cores ({machine['cpu']}), "
        f"{machine['mem_total']} RAM, PostgreSQL {pg_version}. "
        f"Load average before {load_before}, after {loadavg()}.\n"
    )
    emit_json(
        {
            "bench": "latency",
            "machine": machine
            | {"postgresql": pg_version, "loadavg_before": load_before, "loadavg_after": loadavg()},
            "settings": {
                k: getattr(args, k)
                for k in ("rate", "duration", "ai_delay", "poll_seconds", "concurrency")
            },
            "runs": runs,
            "notify_cost": cost,
            "targets": targets,
            "pass": all(t["pass"] for t in targets.values()),
            "seconds": round(total, 1),
        }
    )


def main() -> None:
    asyncio.run(amain(parse_args()))


if __name__ == "__main__":
    main()
