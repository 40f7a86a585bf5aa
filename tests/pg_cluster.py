"""A private, throw-away PostgreSQL cluster, for tests that stop or restart the server.

Such a test must never touch the server the developer pointed the suite at (other sessions,
other runs use it). It gets a cluster of its own instead: `initdb` in a temp dir, `pg_ctl start`
on a free port, listening on 127.0.0.1 only with its Unix socket inside the temp dir, fsync off
and small buffers; a migrated database; and, at the end, `pg_ctl stop -m immediate` and the temp
dir removed.

initdb and postgres refuse to run as root. As root (CI), every server command runs as the
`postgres` system user (`setpriv`), which owns the temp dir; otherwise as the current user. The
superuser role is `postgres` either way, with a random password (scram) over TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from ticketing.migrate import upgrade_database

from .smtp_server import free_port

DATABASE = "ticketing"
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    "max_connections": "50",
    "logging_collector": "off",
}


class ClusterUnavailable(Exception):
    """No PostgreSQL server binaries here, or no user to run them as."""


def find_bindir() -> Path:
    """The directory holding initdb, pg_ctl and postgres: PG_BINDIR, `pg_config --bindir`,
    the newest /usr/lib/postgresql/<version>/bin, or wherever `initdb` is on PATH."""
    candidates: list[str] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run(
                [pg_config, "--bindir"], check=True, capture_output=True, text=True, timeout=10
            )
            candidates.append(out.stdout.strip())
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(versions, key=lambda p: int(Path(p).parent.name), reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).resolve().parent))
    for candidate in candidates:
        bindir = Path(candidate)
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise ClusterUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found; set PG_BINDIR"
    )


def _server_user() -> tuple[list[str], int, int] | None:
    """(command prefix, uid, gid) to run the server as `postgres` when we are root, else None."""
    if os.geteuid() != 0:
        return None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ClusterUnavailable("running as root and there is no `postgres` user") from exc
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise ClusterUnavailable("running as root and `setpriv` (util-linux) is missing")
    prefix = [
        setpriv,
        f"--reuid={user.pw_uid}",
        f"--regid={user.pw_gid}",
        "--clear-groups",
        "--",
    ]
    return prefix, user.pw_uid, user.pw_gid


@dataclass
class PrivateCluster:
    bindir: Path
    root: Path  # the temp dir: data/, socket/, server.log
    port: int
    password: str
    run_as: list[str]

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/postgres"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the migrated database."""
        return f"postgresql+asyncpg://postgres:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [*self.run_as, *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}\n--- server log ---\n{log}"
            )

    def start(self) -> None:
        """Start the server (on self.port) and wait until it accepts connections."""
        self._run(
            str(self.bindir / "pg_ctl"),
            "start",
            "--wait",
            "--timeout=60",
            f"--pgdata={self.data}",
            f"--log={self.log}",
            f"--options=-p {self.port}",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(
            str(self.bindir / "pg_ctl"),
            "stop",
            "--wait",
            "--timeout=60",
            f"--pgdata={self.data}",
            f"--mode={mode}",
        )

    def is_running(self) -> bool:
        command = [*self.run_as, str(self.bindir / "pg_ctl"), "status", f"--pgdata={self.data}"]
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0


def _initdb(cluster: PrivateCluster, owner: tuple[int, int] | None) -> None:
    pwfile = cluster.root / "pwfile"
    pwfile.write_text(cluster.password + "\n")
    if owner:
        os.chown(pwfile, *owner)
    try:
        cluster._run(
            str(cluster.bindir / "initdb"),
            f"--pgdata={cluster.data}",
            "--username=postgres",
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
    finally:
        pwfile.unlink()
    socket_dir = cluster.root / "socket"
    socket_dir.mkdir(mode=0o700)
    if owner:
        os.chown(socket_dir, *owner)
    settings = dict(SERVER_SETTINGS, unix_socket_directories=f"'{socket_dir}'")
    with (cluster.data / "postgresql.conf").open("a") as conf:
        conf.write("\n# ticketing tests: a private, throw-away cluster\n")
        conf.writelines(f"{key} = {value}\n" for key, value in settings.items())


async def _create_database(admin_dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await conn.close()


@contextlib.contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """A running private cluster with a migrated database; removed afterwards, whatever the
    test did to it. Raises ClusterUnavailable when it cannot exist here."""
    bindir = find_bindir()
    server_user = _server_user()
    run_as, owner = ([], None) if server_user is None else (server_user[0], server_user[1:])
    root = Path(tempfile.mkdtemp(prefix="ticketing-pg-"))
    try:
        if owner:
            os.chown(root, *owner)  # mkdtemp made it 0700: only that user (and root) get in
        cluster = PrivateCluster(bindir, root, 0, secrets.token_urlsafe(16), run_as)
        _initdb(cluster, owner)
        for attempt in range(5):
            # The port is free now but another process may take it before the server binds it.
            cluster.port = free_port()
            try:
                cluster.start()
                break
            except RuntimeError:
                if attempt == 4:
                    raise
        try:
            asyncio.run(_create_database(cluster.admin_dsn))
            upgrade_database(cluster.url)
            yield cluster
        finally:
            if cluster.is_running():
                cluster.stop(mode="immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)
