"""Who may come in, and how often: the IP allow-list and token-bucket rate limits."""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from indextts2.server.config import RateLimit

__all__ = ["IpAllowList", "RateLimiter"]

# Buckets kept per limiter; the least recently seen clients are forgotten past this (a forgotten
# client starts again with a full bucket, which errs on the side of letting it in).
_MAX_TRACKED_CLIENTS = 100_000


class IpAllowList:
    """Addresses allowed to connect, as CIDRs; an empty list allows everyone."""

    def __init__(self, cidrs: tuple[str, ...]) -> None:
        self._networks = [ipaddress.ip_network(c, strict=False) for c in cidrs]

    @property
    def enabled(self) -> bool:
        return bool(self._networks)

    def allows(self, address: str | None) -> bool:
        if not self._networks:
            return True
        if not address:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == net.version and ip in net for net in self._networks)


class RateLimiter:
    """One token bucket per client: ``requests`` tokens, refilled evenly over ``period_seconds``.

    A burst of ``requests`` is allowed at once; after that one request per ``period / requests``.
    """

    def __init__(self, limit: RateLimit, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._rate = limit.requests / limit.period_seconds  # tokens per second
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, time)
        self._lock = threading.Lock()

    def acquire(self, client: str) -> float:
        """Take one token for ``client``: 0.0 when allowed, else the seconds until one is available."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(client, (float(self.limit.requests), now))
            tokens = min(float(self.limit.requests), tokens + (now - last) * self._rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[client] = (tokens, now)
                wait = (1.0 - tokens) / self._rate
            while len(self._buckets) > _MAX_TRACKED_CLIENTS:
                self._buckets.popitem(last=False)
        return wait

    @staticmethod
    def retry_after_seconds(wait: float) -> int:
        return max(1, math.ceil(wait))
