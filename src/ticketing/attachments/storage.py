"""Attachment bytes on disk, named by their SHA-256: ATTACHMENT_DIR/ab/cd/abcd....

One copy of a file however often it is attached. A client's name never becomes a path: the
only names here are hashes this module computed.

Writing: the bytes go to a temp file under ATTACHMENT_DIR/tmp (the same file system) while
they are hashed and counted, refused the moment they pass the cap; then fsync, and a hard link
puts the file in place under its hash only if it is not there yet (atomic, never overwriting a
file another row uses).

A file is written before the row that points to it commits. Until the unit of work ends it is
*held* (`StoredFile`): a shared `flock` on it keeps the orphan sweep and other units of work
from removing it. When the unit of work commits the hold is released and the file stays; when
it rolls back, the file goes if, and only if, this unit of work created it and nobody used it
since. "Used since" is seen in the file's mtime: every unit of work that takes a file (new or
already there) moves its mtime forward to a value of its own, so a remover that finds a value
it did not set leaves the file alone. Whatever is left behind (a crash between the write and
the commit, a savepoint rolled back inside a transaction that then committed) has no row
pointing to it and goes with the hourly orphan sweep, which removes only files untouched for
an hour that nobody holds.

`flock` works between the processes of one machine: every process that writes to an
ATTACHMENT_DIR must run on the machine that holds it (or on a file system whose locks span
machines).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import anyio.to_thread
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from ticketing.errors import PayloadTooLarge

log = logging.getLogger(__name__)

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_SHARD = re.compile(r"[0-9a-f]{2}")
TEMP_DIR = "tmp"
TEMP_SUFFIX = ".part"
# Bytes gathered before one write in a worker thread (a thread hop per network chunk would
# cost more than the write).
WRITE_BATCH_BYTES = 256 * 1024
_HELD = "ticketing.attachments.held"  # Session.info key: sha256 -> StoredFile


def describe_size(size: int) -> str:
    """`10 MiB`, `512 KiB`, `100 bytes`."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            value = size / factor
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} bytes"


class FileTooLarge(PayloadTooLarge):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"The file is larger than the limit of {describe_size(max_bytes)}")
        self.max_bytes = max_bytes


class StoredFile:
    """A file in the store, held for one unit of work (see the module's docstring).

    Settle it exactly once: `keep()` (the row committed) or `discard()` (it did not). A file
    handed to `hold_until_end` is settled by its session.
    """

    def __init__(
        self, sha256: str, size: int, path: Path, *, created: bool, fd: int, mtime_ns: int
    ) -> None:
        self.sha256 = sha256
        self.size = size
        self.path = path
        self.created = created  # this unit of work put the file there
        self._fd: int | None = fd  # holds the shared lock
        self._marks = {mtime_ns}  # the mtimes this unit of work gave the file

    @property
    def settled(self) -> bool:
        return self._fd is None

    def keep(self) -> None:
        """Release the hold; the file stays."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def discard(self) -> None:
        """Release the hold, and remove the file if this unit of work created it and nobody
        has taken it since (then nothing can point to it)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if not self.created:
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # another unit of work holds it now: theirs
            found = os.fstat(fd)
            if found.st_mtime_ns in self._marks and _is_at(found, self.path):
                os.unlink(self.path)
        except OSError as exc:
            log.warning("could not remove attachment file %s: %s", self.sha256, exc)
        finally:
            os.close(fd)

    def absorb(self, other: StoredFile) -> None:
        """Take over `other`, the same file stored again by the same unit of work."""
        self.created = self.created or other.created
        self._marks |= other._marks
        other.keep()


def _is_at(found: os.stat_result, path: Path) -> bool:
    """Whether the file `found` (by fstat) is still the one named `path`."""
    try:
        there = os.stat(path)
    except FileNotFoundError:
        return False
    return (there.st_dev, there.st_ino) == (found.st_dev, found.st_ino)


def _mark(fd: int) -> int:
    """Move the file's mtime forward to a value nobody has given it before; return it.

    Now, or one step past the current value when that is not earlier: two units of work that
    take the file within one clock tick still leave different marks. File systems that store
    coarse times get a bigger step.
    """
    before = os.fstat(fd)
    for step in (1, 1_000, 1_000_000, 1_000_000_000, 2_000_000_000):
        wanted = max(time.time_ns(), before.st_mtime_ns + step)
        os.utime(fd, ns=(before.st_atime_ns, wanted))
        after = os.fstat(fd).st_mtime_ns
        if after > before.st_mtime_ns:
            return after
    raise OSError(f"cannot move the modification time of attachment file (fd {fd}) forward")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AttachmentStorage:
    """The files under one ATTACHMENT_DIR. Methods that touch the disk block: the async ones
    run them in a worker thread."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        if not SHA256_HEX.fullmatch(sha256):
            raise ValueError("not a SHA-256 in hex")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def open(self, sha256: str) -> BinaryIO:
        return self.path(sha256).open("rb")

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    async def writer(self, max_bytes: int) -> FileWriter:
        return await anyio.to_thread.run_sync(FileWriter, self, max_bytes)

    async def save_bytes(self, data: bytes, max_bytes: int) -> StoredFile:
        """Store `data` (FileTooLarge over `max_bytes`) and hold it."""
        if len(data) > max_bytes:
            raise FileTooLarge(max_bytes)
        writer = await self.writer(max_bytes)
        try:
            await writer.write(data)
            return await writer.finish()
        except BaseException:
            writer.abort()
            raise

    def place(self, temp: Path, sha256: str, size: int) -> StoredFile:
        """Put the finished temp file in place under its hash (unless the same content is
        there already) and hold it. Blocking."""
        final = self.path(sha256)
        for _ in range(100):
            final.parent.mkdir(parents=True, exist_ok=True)
            created = False
            try:
                os.link(temp, final)
                created = True
            except FileExistsError:
                pass
            except FileNotFoundError:
                continue  # the shard directory went away meanwhile
            try:
                fd = os.open(final, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # removed meanwhile (a sweep or a rollback): put it there again
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                if not _is_at(os.fstat(fd), final):
                    os.close(fd)
                    continue  # removed while we waited for the lock
                mtime_ns = _mark(fd)
            except BaseException:
                os.close(fd)
                raise
            if created:
                _fsync_dir(final.parent)
            return StoredFile(sha256, size, final, created=created, fd=fd, mtime_ns=mtime_ns)
        raise OSError(f"could not store attachment file {sha256}: it keeps disappearing")

    # ---- the orphan sweep -----------------------------------------------------------------

    def shards(self) -> list[Path]:
        """The first-level shard directories (ab/), for a sweep to walk one at a time."""
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        return sorted(
            Path(e.path)
            for e in entries
            if _SHARD.fullmatch(e.name) and e.is_dir(follow_symlinks=False)
        )

    def files_older_than(self, shard: Path, cutoff: float) -> list[str]:
        """Hashes of the files under `shard` last modified before `cutoff` (a Unix time)."""
        found = []
        for sub in _subdirs(shard):
            with contextlib.suppress(FileNotFoundError), os.scandir(sub) as entries:
                for entry in entries:
                    name = entry.name
                    if not (
                        SHA256_HEX.fullmatch(name)
                        and name[:2] == shard.name
                        and name[2:4] == sub.name
                        and entry.is_file(follow_symlinks=False)
                    ):
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                            found.append(name)
        return found

    def remove_if_unheld(self, sha256: str, cutoff: float) -> bool:
        """Remove a file nobody holds that has not been taken since `cutoff`. The caller has
        checked that no row points to it. Blocking."""
        path = self.path(sha256)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # held by a unit of work in flight
            found = os.fstat(fd)
            # Taken (new upload of the same content) after the caller looked for rows: keep.
            if found.st_mtime >= cutoff or not _is_at(found, path):
                return False
            os.unlink(path)
            return True
        finally:
            os.close(fd)

    def remove_stale_temp_files(self, cutoff: float) -> int:
        """Temp files of writes that died (a crash mid-upload) and are older than `cutoff`."""
        removed = 0
        with contextlib.suppress(FileNotFoundError), os.scandir(self.root / TEMP_DIR) as entries:
            for entry in entries:
                if not (entry.name.endswith(TEMP_SUFFIX) and entry.is_file(follow_symlinks=False)):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)
                        removed += 1
        return removed


def _subdirs(shard: Path) -> Iterator[Path]:
    try:
        entries = list(os.scandir(shard))
    except FileNotFoundError:
        return
    for entry in sorted(entries, key=lambda e: e.name):
        if _SHARD.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
            yield Path(entry.path)


class FileWriter:
    """One file being stored: hashed and counted as it arrives, refused (FileTooLarge) the
    moment it passes `max_bytes`, then put in place by `finish()`. Call `abort()` on any
    failure. Not safe for concurrent use."""

    def __init__(self, storage: AttachmentStorage, max_bytes: int) -> None:
        self.storage = storage
        self.max_bytes = max_bytes
        self.size = 0
        self._hash = hashlib.sha256()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        temp_dir = storage.root / TEMP_DIR
        temp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=temp_dir, prefix="upload-", suffix=TEMP_SUFFIX)
        self._temp = Path(name)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")

    async def write(self, data: bytes) -> None:
        if self.size + len(data) > self.max_bytes:
            raise FileTooLarge(self.max_bytes)
        self.size += len(data)
        self._hash.update(data)
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= WRITE_BATCH_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        chunks, self._pending, self._pending_bytes = self._pending, [], 0
        if chunks:
            await anyio.to_thread.run_sync(self._write_all, chunks)

    def _write_all(self, chunks: list[bytes]) -> None:
        assert self._file is not None, "written after finish or abort"
        for chunk in chunks:
            self._file.write(chunk)

    async def finish(self) -> StoredFile:
        """Put the file in place under its hash and hold it."""
        await self._flush()
        return await anyio.to_thread.run_sync(self._finish)

    def _finish(self) -> StoredFile:
        assert self._file is not None, "finished twice"
        file, self._file = self._file, None
        try:
            file.flush()
            os.fsync(file.fileno())
            file.close()
            return self.storage.place(self._temp, self._hash.hexdigest(), self.size)
        finally:
            file.close()
            self._remove_temp()

    def abort(self) -> None:
        """Forget the bytes written so far (idempotent). Not awaited: it must also run in a
        task being cancelled, and closing and unlinking do not wait on anything."""
        file, self._file = self._file, None
        if file is not None:
            file.close()
        self._remove_temp()

    def _remove_temp(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._temp)


# ---- tying files to a unit of work ----------------------------------------------------------


def hold_until_end(session: AsyncSession | Session, stored: StoredFile) -> StoredFile:
    """Let the session's transaction decide: the file stays if it commits, and goes (if this
    unit of work created it) if it rolls back or is closed without committing."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    if not sync.in_transaction():
        sync.begin()  # what the session's next statement would do: the file needs an end
    held: dict[str, StoredFile] = sync.info.setdefault(_HELD, {})
    same = held.get(stored.sha256)
    if same is None or same is stored:
        held[stored.sha256] = stored
        return stored
    same.absorb(stored)  # the same content twice in one unit of work: one hold
    return same


@event.listens_for(Session, "after_commit")
def _keep_held_files(session: Session) -> None:
    for stored in session.info.pop(_HELD, {}).values():
        stored.keep()


@event.listens_for(Session, "after_transaction_end")
def _discard_held_files(session: Session, transaction: SessionTransaction) -> None:
    # The outermost transaction ended without a commit (after_commit has taken the files
    # otherwise): rolled back, failed, or closed. A savepoint's end decides nothing.
    if transaction.parent is None:
        for stored in session.info.pop(_HELD, {}).values():
            stored.discard()
