"""A sliding-window limit kept in process memory, keyed by client address.

Each API process counts on its own: with N processes a client gets up to N times the limit,
which still bounds what one client can do. Memory is bounded by forgetting the least recently
seen clients.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from fastapi import Request


class SlidingWindow:
    def __init__(
        self,
        limit: int,
        window_seconds: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window_seconds
        self.max_keys = max_keys
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str) -> int | None:
        """Count one event for `key`; if that is over the limit, count nothing and return the
        seconds to wait."""
        now = self.clock()
        hits = self._hits.pop(key, None) or deque()  # re-inserted below: most recent last
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        self._hits[key] = hits
        if len(hits) >= self.limit:
            return max(1, math.ceil(hits[0] + self.window - now))
        hits.append(now)
        while len(self._hits) > self.max_keys:
            del self._hits[next(iter(self._hits))]
        return None


def client_address(request: Request) -> str:
    """The client's IP address. Behind a reverse proxy this is the proxy's unless uvicorn
    trusts its X-Forwarded-For (FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else "unknown"
