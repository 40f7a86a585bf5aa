"""Who the client is (behind trusted proxies only), and a per-client limit kept in memory.

Each API process counts on its own: with N processes a client gets up to N times the limit,
which still bounds what one client can do. Memory is bounded by forgetting the least recently
seen clients.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections.abc import Callable, Sequence

from fastapi import Request

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class DistinctKeysWindow:
    """At most `limit` distinct keys (e.g. email addresses) per client in a sliding window.

    Repeating a key the client already used in the window costs nothing: people who ask again
    for their own code never use up the budget of others behind the same address.
    """

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        *,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window_seconds
        self.max_clients = max_clients
        self.clock = clock
        self._seen: dict[str, dict[str, float]] = {}  # client -> key -> first use in window

    def hit(self, client: str, key: str) -> int | None:
        """Count `key` for `client`; if that is over the limit, count nothing and return the
        seconds to wait."""
        now = self.clock()
        keys = self._seen.pop(client, None) or {}  # re-inserted below: most recent last
        for old in [k for k, at in keys.items() if at <= now - self.window]:
            del keys[old]
        self._seen[client] = keys
        if key not in keys:
            if len(keys) >= self.limit:
                return max(1, math.ceil(min(keys.values()) + self.window - now))
            keys[key] = now
        while len(self._seen) > self.max_clients:
            del self._seen[next(iter(self._seen))]
        return None


def parse_networks(spec: str) -> list[IPNetwork]:
    """`10.0.0.1, 192.168.0.0/16` -> networks; raises ValueError on anything else."""
    return [
        ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip()
    ]


def client_address(request: Request, trusted_proxies: Sequence[IPNetwork]) -> str:
    """The client's IP address.

    The TCP peer, unless the peer is one of `trusted_proxies` (TRUSTED_PROXIES): then the
    right-most address in X-Forwarded-For that is not a trusted proxy. Addresses a client
    writes into the header itself sit to the left of the ones its proxies add, so they are
    never used.
    """
    peer = request.client.host if request.client else "unknown"
    if not trusted_proxies or not _trusted(peer, trusted_proxies):
        if "x-forwarded-for" in request.headers:
            _warn_untrusted_forwarding(peer)
        return peer
    hops = [h.strip() for v in request.headers.getlist("x-forwarded-for") for h in v.split(",")]
    client = peer
    for hop in reversed(hops):
        if not _valid(hop):
            break  # garbage left of our proxies' entries: the last trusted hop is the client
        client = hop
        if not _trusted(hop, trusted_proxies):
            break
    return client


_warned = False


def _warn_untrusted_forwarding(peer: str) -> None:
    # Once per process: behind a proxy nobody configured, every client looks like the proxy.
    global _warned
    if not _warned:
        _warned = True
        log.warning(
            "requests carry X-Forwarded-For from %s, which TRUSTED_PROXIES does not name: "
            "the header is ignored and every client behind that proxy counts as one",
            peer,
        )


def _valid(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _trusted(address: str, networks: Sequence[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
