"""Time: every component asks an injected :class:`Clock`, never ``time.time()`` directly.

:class:`SystemClock` is the wall clock. :class:`OffsetClock` adds an offset read from a file, so that
tests can move the service's lifecycle time (key deletion windows, material expiry) forward without
waiting days.

A process has two clocks (``Runtime.clock`` and ``Runtime.wall``): the service clock, which every
lifecycle date, session expiry, creation date and ``aws:CurrentTime`` comes from (an
:class:`OffsetClock` in those tests), and the wall clock for what must agree with other clocks in real
time: the request time clients sign with (SigV4 clock skew), the change log other processes poll, the
validity of the self-signed TLS certificates. Both are :class:`SystemClock` outside tests.
``time.monotonic()`` stays for timeouts and intervals (it measures durations, not dates).
"""

from __future__ import annotations

import os
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class OffsetClock:
    """Wall clock plus a number of seconds read from ``path`` (re-read at most every 0.2 s)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._offset = 0.0
        self._checked = 0.0

    def now(self) -> float:
        real = time.time()
        if real - self._checked > 0.2:
            self._checked = real
            try:
                with open(self._path, encoding="ascii") as f:
                    self._offset = float(f.read().strip() or 0)
            except (OSError, ValueError):
                self._offset = 0.0
        return real + self._offset


def clock_from_env() -> Clock:
    path = os.environ.get("OPENKMS_CLOCK_OFFSET_FILE")
    return OffsetClock(path) if path else SystemClock()
