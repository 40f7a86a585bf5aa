"""A real HTTP server on 127.0.0.1 that tests and benchmarks can make slow, fail or lie.

Each fake (Gemini, OpenAI) subclasses `FakeAIServer` and only says how a path is served and
how its protocol spells an answer and an error. The server runs stdlib `ThreadingHTTPServer`
in a daemon thread, so it works from sync and async tests alike and needs no event loop.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self

MODES = ("ok", "slow", "429", "500", "400", "non_json", "bad_enum", "extra_fields", "hang")

DEFAULT_ANSWER: dict[str, Any] = {
    "required_skills": ["Python", "PostgreSQL", "python"],
    "priority": "high",
    "ticket_type": "bug",
    "helpful_notes": "Check the connection pool settings first.",
}

# What "extra_fields" adds: fields a prompt injection would like to set.
EXTRA_FIELDS: dict[str, Any] = {
    "assigned_to": "attacker",
    "status": "closed",
    "analysis_status": "ai",
    "confidence": {"ticket_type": 1.0, "priority": 1.0},  # a model may not vouch for itself
}

NON_JSON_TEXT = "Sure! This looks like a high priority bug about Python."


@dataclass
class RecordedRequest:
    """One request the fake received (headers have lower-case names)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw text when it was not JSON
    mode: str  # the behaviour the fake chose for it
    at: float = field(default_factory=time.monotonic)


@dataclass
class Reply:
    status: int
    body: Any  # dict -> JSON, str -> text/plain
    headers: dict[str, str] = field(default_factory=dict)


class FakeAIServer:
    """Base class: subclasses implement `route`, `answer_reply` and `error_reply`."""

    name: ClassVar[str] = "fake"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.mode = "ok"
        self.delay = 2.0  # seconds, for "slow"
        self.retry_after: float | None = 1  # Retry-After header on 429; None -> no header
        # More headers on every 429 and 5xx: "retry-after-ms", an HTTP-date "Retry-After", ...
        self.error_headers: dict[str, str] = {}
        self.answer: dict[str, Any] = dict(DEFAULT_ANSWER)
        self.requests: list[RecordedRequest] = []
        self._script: deque[str] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- control -------------------------------------------------------------------------

    def script(self, modes: Iterable[str]) -> None:
        """Queue one-shot modes for the next requests (then `.mode` applies again)."""
        modes = list(modes)
        for mode in modes:
            self._check_mode(mode)
        with self._lock:
            self._script.extend(modes)

    def reset(self) -> None:
        """Back to a well-behaved server with no history."""
        with self._lock:
            self.mode = "ok"
            self._script.clear()
            self.requests.clear()
            self.answer = dict(DEFAULT_ANSWER)
            self.error_headers = {}

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake server is not running")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> Self:
        fake: FakeAIServer = self

        class Handler(_Handler):
            server_fake = fake

        self._stopping.clear()
        self._server = _Server((self.host, self.port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.name}-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases "hang" and "slow" handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- protocol hooks --------------------------------------------------------------------

    def route(self, method: str, path: str) -> str | None:
        """Return the model name for a path this fake serves, or None for a 404."""
        raise NotImplementedError

    def check_auth(self, headers: dict[str, str]) -> Reply | None:
        """Return an error reply when the request is not authenticated."""
        return None

    def answer_reply(self, model: str, text: str, body: Any) -> Reply:
        """A successful reply whose model output is `text`."""
        raise NotImplementedError

    def error_reply(self, status: int, headers: dict[str, str] | None = None) -> Reply:
        """An error in the provider's own error shape."""
        raise NotImplementedError

    # ---- behaviour ---------------------------------------------------------------------------

    @staticmethod
    def _check_mode(mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")

    def _next_mode(self) -> str:
        with self._lock:
            return self._script.popleft() if self._script else self.mode

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Reply | None:
        """Decide the reply for one request; None means: never answer (hang)."""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        model = self.route(method, path)
        mode = self._next_mode() if model is not None else "not_found"
        with self._lock:
            self.requests.append(RecordedRequest(method, path, headers, body, mode))
        if model is None:
            return self.error_reply(404)
        denied = self.check_auth(headers)
        if denied is not None:
            return denied
        self._check_mode(mode)
        if mode == "hang":
            self._stopping.wait()
            return None
        if mode == "slow" and self._stopping.wait(self.delay):
            return None
        if mode == "429":
            extra = {} if self.retry_after is None else {"Retry-After": f"{self.retry_after:g}"}
            return self.error_reply(429, {**extra, **self.error_headers})
        if mode == "500":
            return self.error_reply(500, dict(self.error_headers))
        if mode == "400":
            return self.error_reply(400)
        if mode == "non_json":
            return self.answer_reply(model, NON_JSON_TEXT, body)
        answer = dict(self.answer)
        if mode == "bad_enum":
            answer["priority"] = "critical"
        elif mode == "extra_fields":
            answer.update(EXTRA_FIELDS)
        return self.answer_reply(model, json.dumps(answer), body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # benchmarks open many connections at once


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real APIs
    # Headers and body go out in two writes: with Nagle's algorithm on, the body waits for the
    # client's delayed ACK of the headers, adding 40 ms to every answer on a kept-alive connection.
    disable_nagle_algorithm = True
    server_fake: ClassVar[FakeAIServer]

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.server_fake.handle(self.command, self.path, headers, raw)
        if reply is None:
            self.close_connection = True
            return
        if isinstance(reply.body, str):
            payload, ctype = reply.body.encode(), "text/plain; charset=utf-8"
        else:
            payload, ctype = json.dumps(reply.body).encode(), "application/json; charset=UTF-8"
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its timeout) before we answered: expected in "slow" tests.
            self.close_connection = True

    do_POST = _serve
    do_GET = _serve


def serve_forever_cli(factory: type[FakeAIServer], argv: list[str] | None = None) -> None:
    """`python -m tests.fakes.fake_xxx --port P --delay 0.5`: serve until killed."""
    parser = argparse.ArgumentParser(description=f"Run the {factory.name} fake until killed.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--mode", default=None, choices=MODES)
    args = parser.parse_args(argv)
    fake = factory(args.host, args.port)
    if args.delay > 0:
        fake.mode, fake.delay = "slow", args.delay
    if args.mode:
        fake.mode = args.mode
    fake.start()
    print(f"{factory.name} fake listening on {fake.base_url} (mode {fake.mode})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
