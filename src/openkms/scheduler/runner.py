"""Runs the background jobs on a thread: each job at its own period (the tick is the shortest), none
while the runtime says it is paused (a sealed service)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("openkms.scheduler")

Job = tuple[str, Callable[[], object], float]  # (name, job, period in seconds; 0 = every tick)


class Scheduler:
    def __init__(self, jobs: list[Job], interval: float, paused: Callable[[], bool] | None = None) -> None:
        self._jobs = jobs
        self._paused = paused  # true: every job is skipped this tick (a sealed service)
        self._interval = interval
        self._last: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="openkms-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def run_once(self, force: bool = False) -> None:
        if self._paused is not None and self._paused():
            return
        now = time.monotonic()
        for name, job, period in self._jobs:
            if not force and period and now - self._last.get(name, -period) < period:
                continue
            self._last[name] = now
            try:
                job()
            except Exception:  # a failed job is retried at its next period
                log.exception("background job %s failed", name)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.run_once()
