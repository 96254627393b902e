"""Progress of long operator work (rotation, backup, restore, migration) on standard error: a bar on a
terminal, a line per whole percent otherwise (for logs and CI)."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TextIO

import click


class Progress:
    """``with Progress("re-sealing", total) as p: p.update(done)`` (``total`` may grow)."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = max(total, 0)
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty()
        self._last_percent = -1

    def __enter__(self) -> Progress:
        self._show()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.update(self.total)
        if self._tty:
            click.echo("", file=self._stream, err=True)

    def update(self, done: int, total: int | None = None) -> None:
        if total is not None:
            self.total = max(total, 0)
        self.done = min(max(done, 0), self.total) if self.total else done
        self._show()

    def percent(self) -> int:
        return 100 if self.total == 0 else int(100 * self.done / self.total)

    def _show(self) -> None:
        percent = self.percent()
        if self._tty:
            width = 30
            filled = width * percent // 100
            bar = "#" * filled + "-" * (width - filled)
            click.echo(
                f"\r{self.label} [{bar}] {percent:3d}% ({self.done}/{self.total})",
                nl=False,
                file=self._stream,
            )
            return
        if percent != self._last_percent:
            self._last_percent = percent
            click.echo(f"{self.label}: {percent}% ({self.done}/{self.total})", file=self._stream)
