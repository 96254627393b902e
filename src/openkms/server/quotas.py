"""Request quotas enforced by one process: a token bucket per account, Region and quota group.

Each bucket refills at the group's rate divided by the number of processes sharing the database
(``processes`` in the quotas document, or ``--workers``), and holds at most one second of that rate,
so the whole service never admits more than the quota (plus one second's burst per process). When a
caller's requests reach only some processes, it gets less: at worst the share of the processes it
reaches. Over the budget a call raises ThrottlingException before it does anything.

``throttled`` counts the refused calls by quota group (``xks`` for an XKS key store's own rate), for the
metrics (read at scrape time).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from openkms.domain.quotas import THROTTLING_MESSAGE, QuotaTable
from openkms.errors import ThrottlingException

MAX_BUCKETS = 100_000  # buckets kept; the idle ones are dropped first when there are more


class _Bucket:
    __slots__ = ("rate", "stamp", "tokens")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.tokens = max(rate, 1.0)
        self.stamp = now


class RequestLimiter:
    def __init__(self, table: QuotaTable, clock: Callable[[], float] = time.monotonic) -> None:
        self.table = table
        self._clock = clock
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}
        self._lock = threading.Lock()
        self._share = 1.0 / max(1, table.processes)
        self.throttled: dict[str, int] = {}

    def charge(self, account: str, region: str, group: str) -> None:
        """Take one request from the budget; raises ThrottlingException when it is spent."""
        rate = self.table.rate(group, region)
        if rate is None:
            return
        self.take((account, region, group), rate * self._share)

    def take(self, key: tuple[str, str, str], rate: float) -> None:
        """Take one request from the bucket ``key`` refilled at ``rate`` (this process's share) per
        second; raises ThrottlingException when it is spent."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= MAX_BUCKETS:
                    self._drop_full(now)
                bucket = self._buckets[key] = _Bucket(rate, now)
            else:
                capacity = max(rate, 1.0)
                bucket.tokens = min(capacity, bucket.tokens + (now - bucket.stamp) * rate)
                bucket.stamp = now
            if bucket.tokens < 1.0:
                group = key[2] or key[0]  # a quota group's name, or "xks" (never a tenant's name)
                self.throttled[group] = self.throttled.get(group, 0) + 1
                raise ThrottlingException(THROTTLING_MESSAGE)
            bucket.tokens -= 1.0

    def _drop_full(self, now: float) -> None:
        """Forget buckets that have refilled (their state is the same as a new bucket's)."""
        for key, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.stamp) * bucket.rate >= max(bucket.rate, 1.0):
                del self._buckets[key]
        if len(self._buckets) >= MAX_BUCKETS:
            self._buckets.clear()
