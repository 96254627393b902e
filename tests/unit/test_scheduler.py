"""The scheduler runs its jobs at their periods, and none while paused (a sealed service)."""

from __future__ import annotations

from openkms.scheduler.runner import Scheduler


def test_jobs_are_skipped_while_paused() -> None:
    ran: list[str] = []
    sealed = [True]
    scheduler = Scheduler([("job", lambda: ran.append("job"), 0)], 1.0, paused=lambda: sealed[0])
    scheduler.run_once()
    scheduler.run_once(force=True)
    assert ran == []
    sealed[0] = False
    scheduler.run_once()
    assert ran == ["job"]


def test_a_failing_job_does_not_stop_the_others() -> None:
    ran: list[str] = []

    def fails() -> None:
        raise RuntimeError("boom")

    scheduler = Scheduler([("fails", fails, 0), ("works", lambda: ran.append("works"), 0)], 1.0)
    scheduler.run_once()
    assert ran == ["works"]
