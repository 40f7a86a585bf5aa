"""Fallback load generator (asyncio + httpx, in its own process) for machines without wrk.

Same input and output as bench/wrk_requests.lua: a file of METHOD<TAB>PATH<TAB>TOKEN lines
replayed round-robin, and one "BENCHJSON {...}" line at the end. Closed-loop by default;
`--rate R` paces R requests/s open-loop and times each from its scheduled start.

    python -m bench.loadgen --base-url http://127.0.0.1:8000 --requests r.tsv \
        --connections 32 --duration 10 [--rate 50] [--total 1000]

`--total N` stops after N requests (closed loop), however long they take.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.common import JSON_PREFIX, Req, percentile, ticket_body


def read_requests(path: Path) -> list[Req]:
    requests = []
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0].isupper():
            requests.append(Req(parts[0], parts[1], parts[2]))
    if not requests:
        raise SystemExit(f"no requests in {path}")
    return requests


class Driver:
    def __init__(self, client: httpx.AsyncClient, requests: list[Req]) -> None:
        self.client = client
        self.cycle: Iterator[Req] = itertools.cycle(requests)
        self.counter = itertools.count(1)
        self.latencies: list[float] = []
        self.errors = 0
        self.sent = 0
        self.first_started_at: float | None = None  # wall clock (time.time())

    async def send(self, started: float | None = None) -> None:
        req = next(self.cycle)
        headers = {"Accept": "application/json"}
        if req.token:
            headers["Authorization"] = f"Bearer {req.token}"
        body = ticket_body(next(self.counter)) if req.method == "POST" else None
        self.sent += 1
        if self.first_started_at is None:
            self.first_started_at = time.time()
        t0 = time.perf_counter() if started is None else started
        try:
            response = await self.client.request(req.method, req.path, headers=headers, json=body)
            await response.aread()
            ok = response.status_code < 400
        except httpx.HTTPError:
            ok = False
        self.latencies.append(time.perf_counter() - t0)
        if not ok:
            self.errors += 1


async def closed_loop(
    driver: Driver, connections: int, duration: float, total: int | None = None
) -> float:
    started = time.perf_counter()
    deadline = started + duration

    async def connection() -> None:
        if total is not None:
            while driver.sent < total:
                await driver.send()
            return
        while time.perf_counter() < deadline:
            await driver.send()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return time.perf_counter() - started


async def open_loop(driver: Driver, rate: float, duration: float) -> float:
    started = time.perf_counter()
    tasks = []
    for i in range(int(rate * duration)):
        due = started + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(driver.send(started=due)))
    await asyncio.gather(*tasks)
    return time.perf_counter() - started


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    requests = read_requests(Path(args.requests))
    limits = httpx.Limits(
        max_connections=args.connections, max_keepalive_connections=args.connections
    )
    async with httpx.AsyncClient(
        base_url=args.base_url, limits=limits, timeout=httpx.Timeout(10.0, pool=60.0)
    ) as client:
        driver = Driver(client, requests)
        if args.rate:
            elapsed = await open_loop(driver, args.rate, args.duration)
        else:
            elapsed = await closed_loop(driver, args.connections, args.duration, args.total)
    ms = sorted(v * 1000 for v in driver.latencies)
    return {
        "tool": "httpx",
        "requests": len(ms),
        "duration_s": elapsed,
        "errors": driver.errors,
        "mean_ms": sum(ms) / len(ms) if ms else 0.0,
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "max_ms": ms[-1] if ms else 0.0,
        "first_started_at": driver.first_started_at,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--requests", required=True, help="METHOD<TAB>PATH<TAB>TOKEN lines")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=None, help="requests/s, open-loop")
    parser.add_argument("--total", type=int, default=None, help="stop after N requests")
    args = parser.parse_args()
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        figures = runner.run(main_async(args))
    print(JSON_PREFIX + json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
