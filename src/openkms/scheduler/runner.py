"""Runs the background jobs on a thread at a fixed interval."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("openkms.scheduler")


class Scheduler:
    def __init__(self, jobs: list[tuple[str, Callable[[], object]]], interval: float) -> None:
        self._jobs = jobs
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="openkms-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def run_once(self) -> None:
        for name, job in self._jobs:
            try:
                job()
            except Exception:
                log.exception("background job %s failed", name)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.run_once()
