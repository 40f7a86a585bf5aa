"""A private Dovecot IMAP server for the test suite: Debian's dovecot-imapd, started in a temp
folder on a free port of 127.0.0.1 (never 143/993, never the system's daemon), plain login
without TLS, users in a passwd-file.

Facts of Dovecot that shape this: it will not deliver as uid 0, so mail is owned by the
`dovecot` system user (`mail_uid`/`mail_gid`, `first_valid_uid = 1`, the folders owned by it and
reachable by it: not under pytest's 0700 temp root); `chroot` must be empty for imap-login and
anvil outside the packaged layout; `dovecot -c CONF` starts it, and killing the pid in
`base_dir/master.pid` stops it. Mail is delivered with IMAP APPEND.

Each test takes a mailbox of its own (`new_mailbox()`: another user, so a fresh INBOX), so
tests never see each other's mail and need no cleanup.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

from .smtp_server import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
PASSWORD = "imap-secret"
PREPARED_USERS = 500


def _user(n: int) -> str:
    return f"support{n}@example.com"


CONFIG = """\
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{base}/mail/%u
mail_uid = dovecot
mail_gid = dovecot
first_valid_uid = 1
mail_fsync = never
{capability}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/passwd
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={base}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
"""


def dovecot_installed() -> bool:
    return os.path.exists(DOVECOT)


@dataclass(frozen=True)
class Mailbox:
    """One user's mailbox on the test server."""

    server: DovecotServer
    user: str
    password: str = PASSWORD

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """The IMAP_* settings that read this mailbox."""
        return {
            "inbound_email": "imap",
            "imap_host": "127.0.0.1",
            "imap_port": self.server.port,
            "imap_user": self.user,
            "imap_password": self.password,
            "imap_tls": "none",
            "imap_timeout_seconds": 5,
        } | overrides

    def client(self) -> IMAPClient:
        client = IMAPClient("127.0.0.1", port=self.server.port, ssl=False, timeout=10)
        client.login(self.user, self.password)
        return client

    def append(self, messages: Iterable[bytes], folder: str = "INBOX") -> None:
        """Deliver messages with IMAP APPEND (MULTIAPPEND: one command for all of them)."""
        items = list(messages)
        client = self.client()
        try:
            for start in range(0, len(items), 200):
                client.multiappend(folder, items[start : start + 200])
        finally:
            client.logout()

    def count(self, folder: str = "INBOX") -> int:
        """Messages in `folder` (0 when it does not exist)."""
        client = self.client()
        try:
            if not client.folder_exists(folder):
                return 0
            return int(client.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])
        finally:
            client.logout()

    def folders(self) -> list[str]:
        client = self.client()
        try:
            return sorted(str(name) for _flags, _sep, name in client.list_folders())
        finally:
            client.logout()

    def flags(self, folder: str) -> list[Sequence[bytes]]:
        """The flags of each message in `folder`."""
        client = self.client()
        try:
            client.select_folder(folder, readonly=True)
            return [tuple(f) for f in client.get_flags(client.search()).values()]
        finally:
            client.logout()

    def uidvalidity(self, folder: str = "INBOX") -> int:
        client = self.client()
        try:
            return int(client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])
        finally:
            client.logout()


class DovecotServer:
    """Start with start(); stop() and start() again restart it on the same port.

    `capabilities`: what the server advertises instead of its own list (e.g. without IDLE and
    MOVE, to exercise polling and the COPY fallback); None for Dovecot's own."""

    def __init__(self, capabilities: str | None = None) -> None:
        self.port = free_port()
        # Not under pytest's temp root (0700 root): the dovecot user must reach its maildirs.
        self.base = Path(tempfile.mkdtemp(prefix="ticketing-dovecot-"))
        self.base.chmod(0o755)
        self.capabilities = capabilities
        self._users = itertools.count(1)

    @property
    def log(self) -> str:
        path = self.base / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _write_config(self) -> Path:
        dovecot = pwd.getpwnam("dovecot")
        mail = self.base / "mail"
        mail.mkdir(exist_ok=True)
        os.chown(mail, dovecot.pw_uid, dovecot.pw_gid)
        (self.base / "passwd").write_text(
            "".join(f"{_user(n)}:{{PLAIN}}{PASSWORD}\n" for n in range(1, PREPARED_USERS + 1)),
            encoding="utf-8",
        )
        capability = f"imap_capability = {self.capabilities}" if self.capabilities else ""
        config = self.base / "dovecot.conf"
        config.write_text(
            CONFIG.format(base=self.base, port=self.port, capability=capability),
            encoding="utf-8",
        )
        return config

    def start(self, timeout: float = 15.0) -> None:
        config = self._write_config()
        # The daemon keeps inherited pipes open: give it files, not pipes, or run() never ends.
        with (self.base / "start.out").open("ab") as out:
            subprocess.run(
                [DOVECOT, "-c", str(config)],
                check=True,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"dovecot did not start on port {self.port}:\n{self.log[-3000:]}")

    @property
    def pid(self) -> int | None:
        path = self.base / "run" / "master.pid"
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server and every connection it has (its processes all end)."""
        pid = self.pid
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        # The port is free again only when no child (imap-login) listens any more.
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
            except OSError:
                return
            time.sleep(0.05)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def new_mailbox(self) -> Mailbox:
        """A user of its own, with an empty mailbox. The users are written before the server
        starts: Dovecot notices a changed passwd-file by its mtime, in whole seconds."""
        n = next(self._users)
        if n > PREPARED_USERS:
            raise RuntimeError(f"more than {PREPARED_USERS} mailboxes asked of one server")
        return Mailbox(self, _user(n))
