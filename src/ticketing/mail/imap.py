"""The support mailbox over IMAP: what is waiting, its bytes, and moving handled mail away.

IMAPClient (BSD licence, maintained, complete: UID commands, MOVE, IDLE, folder creation,
literal handling) runs in a worker thread: its calls are blocking, and the reader awaits each
one with `asyncio.to_thread`, one at a time, so one connection is never used by two threads at
once. (aioimaplib, the asyncio alternative, is GPL-3.0 and leaves response parsing to the
caller.)

Nothing here grows with the number of handled messages: those are in the done folder, which is
never read. The watched folder holds only mail that is waiting (or, after a crash between a
commit and the move, mail whose log row exists, which the reader just moves).
"""

from __future__ import annotations

import contextlib
import imaplib
import socket
import ssl
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from ticketing.config import Settings

# Messages per FETCH of sizes, and the most bytes one FETCH of bodies asks for.
SIZE_FETCH_CHUNK = 1000
BODY_FETCH_MAX_MESSAGES = 100
BODY_FETCH_MAX_BYTES = 16 * 1024 * 1024
HEADER_FIELDS = b"BODY[HEADER.FIELDS (FROM SUBJECT MESSAGE-ID DATE)]"


class MailboxError(Exception):
    """The mailbox cannot be reached or refused a command; str(exc) says what, briefly."""


@dataclass(frozen=True)
class MailboxConfig:
    host: str
    port: int
    user: str
    password: str
    tls: Literal["ssl", "starttls", "none"]
    folder: str
    done_folder: str
    timeout_seconds: float
    ssl_context: ssl.SSLContext | None = None  # None: the system's trusted CAs

    @classmethod
    def from_settings(cls, settings: Settings) -> MailboxConfig:
        settings.require_mailbox()
        assert settings.imap_host is not None and settings.imap_user is not None
        return cls(
            host=settings.imap_host,
            port=settings.imap_port,
            user=settings.imap_user,
            password=settings.imap_password or "",
            tls=settings.imap_tls,
            folder=settings.imap_folder,
            done_folder=settings.imap_done_folder,
            timeout_seconds=settings.imap_timeout_seconds,
        )


@dataclass(frozen=True)
class WaitingMessage:
    uid: int
    size: int
    key: str  # f"{UIDVALIDITY}:{UID}": the inbound log's key for this message


def describe(exc: BaseException) -> str:
    """A short, log-safe account of an IMAP or network failure."""
    if isinstance(exc, MailboxError):
        return str(exc)
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


# What the IMAP library and the network raise: every one means "try again later".
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    IMAPClientError,
    imaplib.IMAP4.error,
    OSError,
    EOFError,
    ssl.SSLError,
)


class MailboxConnection:
    """One logged-in IMAP connection with the watched folder selected. Blocking: call from a
    thread. Every method raises MailboxError for IMAP and network failures."""

    def __init__(self, config: MailboxConfig) -> None:
        self.config = config
        self._client: IMAPClient | None = None
        self.uidvalidity = 0
        self.capabilities: frozenset[bytes] = frozenset()
        self._idling = False

    # -- connection ---------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect, log in, create the done folder if missing, select the watched folder."""
        c = self.config
        try:
            context = c.ssl_context or ssl.create_default_context()
            client = IMAPClient(
                c.host,
                port=c.port,
                use_uid=True,
                ssl=c.tls == "ssl",
                ssl_context=context if c.tls == "ssl" else None,
                timeout=c.timeout_seconds,
            )
            self._client = client
            if c.tls == "starttls":
                client.starttls(context)
            client.login(c.user, c.password)
            self.capabilities = frozenset(client.capabilities())
            self._ensure_folder(c.done_folder)
            self.select()
        except TRANSIENT_ERRORS as exc:
            self.close()
            raise MailboxError(describe(exc)) from exc

    def _ensure_folder(self, folder: str) -> None:
        client = self._require()
        if client.folder_exists(folder):
            return
        try:
            client.create_folder(folder)
        except IMAPClientError:
            # Another process may have created it in between; anything else fails here.
            if not client.folder_exists(folder):
                raise

    def select(self) -> int:
        """(Re-)select the watched folder; returns how many messages it holds."""
        with self._errors():
            info = self._require().select_folder(self.config.folder)
            self.uidvalidity = int(info.get(b"UIDVALIDITY", 0))
            return int(info.get(b"EXISTS", 0))

    @property
    def supports_idle(self) -> bool:
        return b"IDLE" in self.capabilities

    @property
    def supports_move(self) -> bool:
        return b"MOVE" in self.capabilities

    def close(self) -> None:
        """Log out if possible; always drop the socket. Never raises."""
        client, self._client = self._client, None
        self._idling = False
        if client is None:
            return
        try:
            client.logout()
        except Exception:
            with contextlib.suppress(Exception):  # the connection is gone either way
                client.shutdown()

    # -- reading ------------------------------------------------------------------------------

    def waiting(self) -> list[WaitingMessage]:
        """Every message in the watched folder (not flagged deleted), oldest first, with its
        size and key. Bodies are not read."""
        with self._errors():
            client = self._require()
            uids = sorted(int(u) for u in client.search(["UNDELETED"]))
            found: list[WaitingMessage] = []
            for chunk in _chunks(uids, SIZE_FETCH_CHUNK):
                sizes = client.fetch(chunk, ["RFC822.SIZE"])
                for uid in chunk:
                    data = sizes.get(uid)
                    if data is None:  # expunged meanwhile by someone else
                        continue
                    size = int(data.get(b"RFC822.SIZE", 0))
                    found.append(WaitingMessage(uid, size, f"{self.uidvalidity}:{uid}"))
            return found

    def fetch_bodies(self, uids: Sequence[int]) -> dict[int, bytes]:
        """The whole raw message of each uid (without setting \\Seen)."""
        return self._fetch(uids, "BODY.PEEK[]", b"BODY[]")

    def fetch_headers(self, uids: Sequence[int]) -> dict[int, bytes]:
        """A few header fields of each uid (for the log row of a message too large to read)."""
        return self._fetch(uids, HEADER_FIELDS.replace(b"BODY[", b"BODY.PEEK[").decode(), None)

    def _fetch(self, uids: Sequence[int], item: str, key: bytes | None) -> dict[int, bytes]:
        if not uids:
            return {}
        with self._errors():
            response = self._require().fetch(list(uids), [item])
        result: dict[int, bytes] = {}
        for uid, data in response.items():
            value = data.get(key) if key is not None else _first_bytes(data)
            if isinstance(value, bytes):
                result[int(uid)] = value
        return result

    # -- moving -------------------------------------------------------------------------------

    def finish(self, uids: Sequence[int]) -> None:
        """Flag these messages \\Seen and move them to the done folder (MOVE, or COPY + delete
        + expunge where the server has no MOVE)."""
        if not uids:
            return
        uid_list = list(uids)
        with self._errors():
            client = self._require()
            client.add_flags(uid_list, [b"\\Seen"], silent=True)
            if self.supports_move:
                client.move(uid_list, self.config.done_folder)
                return
            client.copy(uid_list, self.config.done_folder)
            client.add_flags(uid_list, [b"\\Deleted"], silent=True)
            if b"UIDPLUS" in self.capabilities:
                client.uid_expunge(uid_list)
            else:
                client.expunge()

    # -- waiting for mail ---------------------------------------------------------------------

    def idle_start(self) -> None:
        with self._errors():
            self._require().idle()
            self._idling = True

    def idle_wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds in IDLE; True when it is time to look at the mailbox:
        new mail was announced, the server said BYE, or the socket woke with nothing to say.

        IMAPClient's idle_check swallows a closed connection (it returns no responses, at
        once, forever): an early return without responses is treated as a wake-up, and
        ending IDLE then either works (a harmless extra pass) or raises (an outage)."""
        started = time.monotonic()
        with self._errors():
            responses = self._require().idle_check(timeout=timeout)
        if not responses:
            return time.monotonic() - started < timeout / 2
        return any(
            isinstance(r, tuple)
            and (r[0] == b"BYE" or (len(r) >= 2 and r[1] in (b"EXISTS", b"RECENT")))
            for r in responses
        )

    def idle_done(self) -> None:
        if not self._idling:
            return
        self._idling = False
        with self._errors():
            self._require().idle_done()

    def noop(self) -> None:
        with self._errors():
            self._require().noop()

    # -- internals ----------------------------------------------------------------------------

    def _require(self) -> IMAPClient:
        if self._client is None:
            raise MailboxError("not connected")
        return self._client

    def _errors(self) -> _TranslateErrors:
        return _TranslateErrors(self)


class _TranslateErrors:
    """IMAP and network failures become MailboxError; the connection is closed (not reusable)."""

    def __init__(self, connection: MailboxConnection) -> None:
        self.connection = connection

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, _tb: Any) -> None:
        if (
            exc is not None
            and not isinstance(exc, MailboxError)
            and isinstance(exc, TRANSIENT_ERRORS)
        ):
            self.connection.close()
            raise MailboxError(describe(exc)) from exc


def _chunks(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _first_bytes(data: dict[bytes, Any]) -> bytes | None:
    for name, value in data.items():
        if name.startswith(b"BODY[") and isinstance(value, bytes):
            return value
    return None


def body_batches(messages: Sequence[WaitingMessage]) -> Iterator[list[WaitingMessage]]:
    """Messages grouped for one FETCH each: at most BODY_FETCH_MAX_MESSAGES and, unless one
    message alone is larger, BODY_FETCH_MAX_BYTES."""
    batch: list[WaitingMessage] = []
    size = 0
    for message in messages:
        if batch and (
            len(batch) >= BODY_FETCH_MAX_MESSAGES or size + message.size > BODY_FETCH_MAX_BYTES
        ):
            yield batch
            batch, size = [], 0
        batch.append(message)
        size += message.size
    if batch:
        yield batch
