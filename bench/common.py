"""Shared machinery for the benchmarks: child processes, databases, load generation, figures.

Everything the benchmarks start runs in its own process group and is stopped (SIGTERM, then
SIGKILL) when the benchmark ends, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncpg

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "bench"
WRK_SCRIPT = BENCH_DIR / "wrk_requests.lua"
PG_ADMIN_DSN = os.environ.get(
    "BENCH_POSTGRES_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SECRET_KEY = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-0123"
JSON_PREFIX = "BENCHJSON "

# The ticket every load generator files (wrk_requests.lua spells the same text).
TICKET_TITLE = "Report export times out (bench %d)"
TICKET_DESCRIPTION = (
    "Since this morning the CSV export of the monthly report fails with a timeout when the "
    "report has more than ten thousand rows. Steps: open Reports, pick March, click Export. "
    "Expected a file; got an error page after 30 seconds. Our Python service logs a PostgreSQL "
    "statement timeout. (bench request %d)"
)


def ticket_body(n: int) -> dict[str, str]:
    return {"title": TICKET_TITLE % n, "description": TICKET_DESCRIPTION % n}


def log(message: str) -> None:
    """Progress goes to stderr; stdout carries only the tables and the final JSON line."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def install_signal_handlers() -> None:
    """Turn SIGTERM/SIGHUP into SystemExit so every `finally` (process clean-up) runs."""

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGHUP, _exit)


# ---- child processes ----------------------------------------------------------------------


@dataclass
class Service:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class ProcessGroup:
    """Child processes, each leading its own process group; all are stopped on exit."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.services: list[Service] = []

    def start(self, name: str, argv: Sequence[str], *, env: dict[str, str], cwd: Path) -> Service:
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as out:
            popen = subprocess.Popen(
                list(argv),
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        service = Service(name, popen, log_path)
        self.services.append(service)
        return service

    def stop(self, service: Service, timeout: float = 15.0) -> None:
        if service.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.pid, signal.SIGTERM)
            try:
                service.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(service.pid, signal.SIGKILL)
                service.popen.wait(5)
        # Anything the leader left behind in its group goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(service.pid, signal.SIGKILL)
        if service in self.services:
            self.services.remove(service)

    def stop_all(self) -> None:
        for service in reversed(list(self.services)):
            self.stop(service)

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()


def run_checked(
    argv: Sequence[str], *, env: dict[str, str], cwd: Path, timeout: float = 300
) -> str:
    """Run a command to completion in its own process group; raise with its output on failure."""
    with subprocess.Popen(
        list(argv),
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{out}")
    return out


def service_env(settings: dict[str, object]) -> dict[str, str]:
    """The environment for a `ticketing` process: ours, never a setting inherited by accident."""
    from ticketing.config import Settings

    names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    for key, value in settings.items():
        env[key.upper()] = str(value)
    return env


def ticketing_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "ticketing", *args]


def migrate(database_url: str, cwd: Path) -> None:
    """A fresh schema through the real command, `ticketing db upgrade`."""
    env = service_env({"database_url": database_url, "secret_key": SECRET_KEY})
    run_checked(ticketing_cli("db", "upgrade"), env=env, cwd=cwd)


def wait_http(url: str, service: Service, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not service.alive():
            raise RuntimeError(f"{service.name} exited during start-up:\n{service.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{service.name} not ready at {url}:\n{service.tail()}")
        time.sleep(0.1)


# ---- PostgreSQL -------------------------------------------------------------------------------


def pg_url(name: str, admin_dsn: str = PG_ADMIN_DSN) -> str:
    base = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


def _check_name(name: str) -> None:
    # bench_* or <prefix>_bench_* (a checkout's own prefix): never a database of the product's
    if not re.fullmatch(r"([a-z0-9]+_)?bench_[a-z0-9_]+", name):
        raise ValueError(f"benchmark databases are named [prefix_]bench_*: {name!r}")


async def recreate_database(name: str, admin_dsn: str = PG_ADMIN_DSN) -> None:
    _check_name(name)
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def database_exists(name: str, admin_dsn: str = PG_ADMIN_DSN) -> bool:
    _check_name(name)
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def drop_database(name: str, admin_dsn: str = PG_ADMIN_DSN) -> None:
    _check_name(name)
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await conn.close()


async def postgres_version(admin_dsn: str = PG_ADMIN_DSN) -> str:
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


# ---- load generation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Req:
    method: str
    path: str
    token: str = ""


def write_requests(path: Path, requests: Sequence[Req]) -> Path:
    """The request list both load generators replay round-robin: METHOD<TAB>PATH<TAB>TOKEN."""
    path.write_text("".join(f"{r.method}\t{r.path}\t{r.token}\n" for r in requests))
    return path


@dataclass
class LoadResult:
    tool: str
    connections: int
    requests: int
    duration_s: float
    errors: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    rate: float | None = None  # offered requests/s (paced runs only)
    # CPU over the run, in % of one core: the server process and the load generator; and how
    # busy the whole machine was, in % of all its cores (other work on the machine shows here).
    server_cpu_pct: float | None = None
    loadgen_cpu_pct: float | None = None
    machine_busy_pct: float | None = None
    first_started_at: float | None = None  # wall clock of the first request (httpx only)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def server_cpu_ms_per_request(self) -> float | None:
        """Server CPU time per request: steadier than req/s when the machine is shared."""
        if self.server_cpu_pct is None or not self.requests:
            return None
        return self.server_cpu_pct * 10 * self.duration_s / self.requests

    def figures(self) -> dict[str, Any]:
        out = asdict(self)
        out["rps"] = round(self.rps, 1)
        out["server_cpu_ms_per_request"] = self.server_cpu_ms_per_request
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = round(value, 2)
        return out


def pick_loadgen(choice: str) -> str:
    if choice == "auto":
        return "wrk" if shutil.which("wrk") else "httpx"
    if choice == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install -y wrk), or use --loadgen httpx")
    return choice


def run_load(
    tool: str,
    base_url: str,
    requests_file: Path,
    *,
    connections: int,
    duration: float,
    rate: float | None = None,
    server_pid: int | None = None,
    total: int | None = None,
) -> LoadResult:
    """Drive `base_url` with the requests in `requests_file` for `duration` seconds.

    wrk runs closed-loop (each connection sends its next request when the last one answered).
    The httpx generator does the same, or, with `rate`, paces requests open-loop and measures
    each from its scheduled start (no coordinated omission), or, with `total`, sends exactly
    that many requests and stops.
    """
    if tool == "wrk" and rate is None and total is None:
        argv = [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "-s",
            str(WRK_SCRIPT),
            base_url,
            "--",
            str(requests_file),
        ]
    else:
        tool = "httpx"
        argv = [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--base-url",
            base_url,
            "--requests",
            str(requests_file),
            "--connections",
            str(connections),
            "--duration",
            str(duration),
        ]
        if rate is not None:
            argv += ["--rate", str(rate)]
        if total is not None:
            argv += ["--total", str(total)]
    timeout = duration + 120 if total is None else 3600
    with CpuMeter(server_pid) as cpu:
        out = run_checked(argv, env=dict(os.environ), cwd=REPO_ROOT, timeout=timeout)
    for line in out.splitlines():
        if line.startswith(JSON_PREFIX):
            data = json.loads(line[len(JSON_PREFIX) :])
            return LoadResult(
                tool=tool,
                connections=connections,
                requests=int(data["requests"]),
                duration_s=float(data["duration_s"]),
                errors=int(data["errors"]),
                mean_ms=float(data["mean_ms"]),
                p50_ms=float(data["p50_ms"]),
                p95_ms=float(data["p95_ms"]),
                p99_ms=float(data["p99_ms"]),
                max_ms=float(data["max_ms"]),
                rate=rate,
                server_cpu_pct=cpu.process_pct,
                loadgen_cpu_pct=cpu.children_pct,
                machine_busy_pct=cpu.machine_pct,
                first_started_at=data.get("first_started_at"),
            )
    raise RuntimeError(f"no figures in the load generator's output:\n{out}")


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (0 when there are none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(p / 100 * len(sorted_values) + 0.5)))
    return float(sorted_values[rank - 1])


# ---- CPU and memory -----------------------------------------------------------------------------


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def _process_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


class CpuMeter:
    """CPU used during a block by some processes, by waited-for children, and by the machine."""

    def __init__(self, *pids: int | None) -> None:
        self.pids = [p for p in pids if p]
        self.hz = os.sysconf("SC_CLK_TCK")
        self.process_pct: float | None = None
        self.children_pct: float | None = None
        self.machine_pct: float | None = None
        self.cpu_seconds: float | None = None  # the processes' CPU time during the block

    def _procs(self) -> int | None:
        ticks = [_process_ticks(pid) for pid in self.pids]
        return sum(t for t in ticks if t is not None) if self.pids else None

    def __enter__(self) -> CpuMeter:
        self._t0 = time.monotonic()
        self._proc0 = self._procs()
        self._machine0 = _machine_ticks()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._children0 = usage.ru_utime + usage.ru_stime
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = max(time.monotonic() - self._t0, 1e-6)
        proc1 = self._procs()
        if proc1 is not None and self._proc0 is not None:
            self.cpu_seconds = (proc1 - self._proc0) / self.hz
            self.process_pct = self.cpu_seconds / elapsed * 100
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.children_pct = (usage.ru_utime + usage.ru_stime - self._children0) / elapsed * 100
        busy1, total1 = _machine_ticks()
        busy0, total0 = self._machine0
        if total1 > total0:
            self.machine_pct = (busy1 - busy0) / (total1 - total0) * 100


class PgBackendCpu:
    """CPU used during a block by the PostgreSQL backends serving one database.

    Their pids come from `pg_stat_activity` (every `interval` seconds, from a thread with its
    own connection, which is left out), their CPU from /proc/<pid>/stat: a backend that was
    there at the start counts from then, one that appears later from its birth, one that ends
    up to its last sample. The server's own background processes (WAL writer, checkpointer)
    serve every database on the server and are not counted.
    """

    def __init__(
        self, database: str, interval: float = 0.25, admin_dsn: str = PG_ADMIN_DSN
    ) -> None:
        self.database = database
        self.interval = interval
        self.admin_dsn = admin_dsn
        self.hz = os.sysconf("SC_CLK_TCK")
        self._first: dict[int, int] = {}
        self._last: dict[int, int] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.seconds: float | None = None

    @property
    def cpu_seconds(self) -> float:
        return sum(self._last[p] - self._first[p] for p in self._last) / self.hz

    @property
    def backends(self) -> int:
        return len(self._last)

    async def _main(self) -> None:
        conn = await asyncpg.connect(self.admin_dsn, timeout=10)
        try:
            initial = True
            while True:
                rows = await conn.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE datname = $1 "
                    "AND pid <> pg_backend_pid()",
                    self.database,
                )
                for row in rows:
                    ticks = _process_ticks(row["pid"])
                    if ticks is None:
                        continue
                    self._first.setdefault(row["pid"], ticks if initial else 0)
                    self._last[row["pid"]] = ticks
                initial = False
                self._ready.set()
                if self._stop.is_set():
                    return
                await asyncio.sleep(self.interval)
        finally:
            await conn.close()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by __exit__
            self._error = exc
            self._ready.set()

    def __enter__(self) -> PgBackendCpu:
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self.seconds = time.monotonic() - self._t0
        if self._error is not None:
            raise RuntimeError(f"sampling PostgreSQL backends failed: {self._error}")


def loadavg() -> list[float]:
    """1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


# ---- memory -------------------------------------------------------------------------------------


def proc_memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in kB."""
    found: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    return found


class RssSampler:
    """Samples a process's VmRSS in a thread; keeps the maximum and the last VmHWM."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.max_rss_kb = 0
        self.hwm_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        mem = proc_memory_kb(self.pid)
        self.max_rss_kb = max(self.max_rss_kb, mem.get("VmRSS", 0))
        self.hwm_kb = max(self.hwm_kb, mem.get("VmHWM", 0))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> RssSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def mb(kb: int) -> float:
    return round(kb / 1024, 1)


# ---- reporting ----------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    meminfo = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            meminfo[key] = value.strip()
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.partition(":")[2].strip()
                break
    wrk_version = None
    if shutil.which("wrk"):
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        wrk_version = (out.stdout or out.stderr).splitlines()[0].split(" [")[0]
    import sqlite3

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu_model,
        "mem_total": meminfo.get("MemTotal", "?"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "wrk": wrk_version,
    }


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """An aligned Markdown table (pastes straight into docs/performance.md)."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    if isinstance(value, bool):
        return "PASS" if value else "FAIL"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def emit_json(figures: dict[str, Any]) -> None:
    """The last line of a benchmark's output: all its figures, one JSON object."""
    sys.stdout.flush()
    print(json.dumps(figures, separators=(",", ":"), default=str), flush=True)


@contextlib.contextmanager
def timed(label: str) -> Iterator[dict[str, float]]:
    box: dict[str, float] = {}
    started = time.monotonic()
    log(f"{label} ...")
    try:
        yield box
    finally:
        box["seconds"] = time.monotonic() - started
        log(f"{label}: {box['seconds']:.1f} s")
